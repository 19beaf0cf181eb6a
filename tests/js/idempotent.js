// kafkajs's idempotent producer, driven by test_idempotence.py:
//   node idempotent.js BOOTSTRAP TOPIC N PARTITIONS PER_SEND
// Sends values m-0 .. m-(N-1), value i to partition i % PARTITIONS, PER_SEND
// messages per send() (one Produce request), one send at a time, and prints
// JSON: for each send its messages' partitions and the base offsets kafkajs
// was told. kafkajs keeps sequence numbers per partition and reuses them when
// it retries a send whose connection died, so the broker must answer a retry
// of an applied batch with the original offsets.
const { Kafka, logLevel } = require('kafkajs')
const [, , bootstrap, topic, n, partitions, perSend] = process.argv
const kafka = new Kafka({
  clientId: 'strom-idempotence-test', brokers: [bootstrap], logLevel: logLevel.NOTHING,
  retry: { initialRetryTime: 50, maxRetryTime: 1000, retries: 50 },
  connectionTimeout: 3000, requestTimeout: 10000,
})

async function main() {
  // kafkajs requires one request in flight for its idempotent mode to keep order.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const sends = []
  for (let start = 0; start < Number(n); start += Number(perSend)) {
    const messages = []
    for (let i = start; i < Math.min(start + Number(perSend), Number(n)); i++) {
      messages.push({ partition: i % Number(partitions), value: `m-${i}` })
    }
    const res = await producer.send({ topic, acks: -1, messages })
    sends.push(res.map((r) => ({ partition: r.partition, errorCode: r.errorCode, baseOffset: r.baseOffset })))
  }
  await producer.disconnect()
  console.log(JSON.stringify(sends))
}
main().catch((e) => { console.error(e); process.exit(1) })
