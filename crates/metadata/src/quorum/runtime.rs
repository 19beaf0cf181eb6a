//! openraft's async runtime: tokio, except that the random numbers openraft draws (election
//! timeouts) come from a thread-local generator that tests can seed with [`seed_election_rng`].

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static RNG: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Seeds the election-timeout generator of the current thread. A simulation running every node
/// on one thread (turmoil) then draws the same timeouts for the same seed.
pub fn seed_election_rng(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

fn with_rng<T>(f: impl FnOnce(&mut StdRng) -> T) -> T {
    RNG.with(|r| {
        let mut r = r.borrow_mut();
        f(r.get_or_insert_with(StdRng::from_entropy))
    })
}

/// Handle to the thread-local generator.
pub struct ElectionRng;

impl RngCore for ElectionRng {
    fn next_u32(&mut self) -> u32 {
        with_rng(|r| r.next_u32())
    }
    fn next_u64(&mut self) -> u64 {
        with_rng(|r| r.next_u64())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        with_rng(|r| r.fill_bytes(dest))
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        with_rng(|r| r.try_fill_bytes(dest))
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct QuorumRuntime;

type T = TokioRuntime;

impl AsyncRuntime for QuorumRuntime {
    type JoinError = <T as AsyncRuntime>::JoinError;
    type JoinHandle<O: OptionalSend + 'static> = <T as AsyncRuntime>::JoinHandle<O>;
    type Sleep = <T as AsyncRuntime>::Sleep;
    type Instant = <T as AsyncRuntime>::Instant;
    type TimeoutError = <T as AsyncRuntime>::TimeoutError;
    type Timeout<R, F: Future<Output = R> + OptionalSend> = <T as AsyncRuntime>::Timeout<R, F>;
    type ThreadLocalRng = ElectionRng;
    type OneshotSender<O: OptionalSend> = <T as AsyncRuntime>::OneshotSender<O>;
    type OneshotReceiverError = <T as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<O: OptionalSend> = <T as AsyncRuntime>::OneshotReceiver<O>;

    fn spawn<F>(future: F) -> Self::JoinHandle<F::Output>
    where
        F: Future + OptionalSend + 'static,
        F::Output: OptionalSend + 'static,
    {
        T::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        T::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        T::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        T::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        T::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        T::is_panic(join_error)
    }

    fn thread_rng() -> ElectionRng {
        ElectionRng
    }

    fn oneshot<O>() -> (Self::OneshotSender<O>, Self::OneshotReceiver<O>)
    where
        O: OptionalSend,
    {
        T::oneshot()
    }
}
