// kafkajs's transactional producer, driven by test_transactions.py:
//   node transactions.js BOOTSTRAP TOPIC GROUP TRANSACTIONAL_ID
// Three transactions on TOPIC partition 0: "c1-*" committed with an offset for GROUP
// (sendOffsets), "a-*" aborted, "c2-*" committed. Prints JSON with what kafkajs was told.
const { Kafka, logLevel } = require('kafkajs')
const [, , bootstrap, topic, groupId, transactionalId] = process.argv
const kafka = new Kafka({ clientId: 'strom-txn-test', brokers: [bootstrap], logLevel: logLevel.ERROR })

async function main() {
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const out = []
  for (const [name, commit] of [['c1', true], ['a', false], ['c2', true]]) {
    const txn = await producer.transaction()
    const messages = Array.from({ length: 5 }, (_, i) => ({ partition: 0, value: `${name}-${i}` }))
    const res = await txn.send({ topic, messages })
    if (name === 'c1') {
      await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset: '5' }] }] })
    }
    if (commit) await txn.commit()
    else await txn.abort()
    out.push({ name, commit, baseOffset: res[0].baseOffset })
  }
  await producer.disconnect()
  console.log(JSON.stringify(out))
}
main().catch((e) => { console.error(e); process.exit(1) })
