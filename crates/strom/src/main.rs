//! The `strom` binary: argument parsing only. `server` runs a broker; the other
//! subcommands are the admin and data CLI built on `strom-client`.

mod alloc;
mod bench_cmd;
mod cli;
mod cluster_cmd;
mod group_cmd;
mod log_dirs_cmd;
mod txn_cmd;

#[global_allocator]
static GLOBAL: alloc::StromAlloc = alloc::StromAlloc;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
