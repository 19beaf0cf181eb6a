// kafkajs checks driven by test_kafkajs.py.
//   node roundtrip.js produce BOOTSTRAP TOPIC N CODEC   -> produces N messages, prints JSON offsets
//   node roundtrip.js read BOOTSTRAP TOPIC PARTITION N  -> fetches N messages from offset 0, prints JSON
// Reading uses kafkajs's own broker connection and record decoding (Fetch +
// decompression), not its group consumer: consumer groups arrive with a later issue.
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')
const [, , cmd, bootstrap, topic, arg1, arg2] = process.argv
const kafka = new Kafka({ clientId: 'strom-test', brokers: [bootstrap], logLevel: logLevel.ERROR })
const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }

async function produce(n, codec) {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  const p = kafka.producer()
  await p.connect()
  const messages = []
  for (let i = 0; i < n; i++) {
    messages.push({ key: i % 5 === 0 ? null : `k${i}`, value: `value-${i}`, headers: { i: `${i}` } })
  }
  const res = await p.send({ topic, acks: -1, compression: codecs[codec], messages })
  await p.disconnect()
  const offsets = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  console.log(JSON.stringify({ res, offsets }))
}

async function read(partition, n) {
  // kafkajs internals: the cluster object owns broker connections and decoders.
  const cluster = kafka[Object.getOwnPropertySymbols(kafka).find((s) => s.toString().includes('createCluster'))]({})
  await cluster.connect()
  await cluster.refreshMetadata([topic])
  const broker = await cluster.findLeaderForPartitions(topic, [partition])
  const leader = await cluster.findBroker({ nodeId: Object.keys(broker)[0] })
  const out = []
  let offset = '0'
  while (out.length < n) {
    const resp = await leader.fetch({
      replicaId: -1, isolationLevel: 0, maxWaitTime: 500, minBytes: 1, maxBytes: 10485760,
      topics: [{ topic, partitions: [{ partition, fetchOffset: offset, maxBytes: 1048576 }] }],
    })
    const p = resp.responses[0].partitions[0]
    if (p.errorCode !== 0) throw new Error(`fetch error ${p.errorCode}`)
    for (const m of p.messages) {
      if (BigInt(m.offset) < BigInt(offset)) continue
      out.push({ offset: m.offset, key: m.key === null ? null : m.key.toString(), value: m.value === null ? null : m.value.toString(),
        headers: Object.fromEntries(Object.entries(m.headers || {}).map(([k, v]) => [k, v.toString()])) })
      offset = (BigInt(m.offset) + 1n).toString()
    }
  }
  await cluster.disconnect()
  console.log(JSON.stringify(out.slice(0, n)))
}

const main = cmd === 'produce' ? produce(Number(arg1), arg2) : read(Number(arg1), Number(arg2))
main.catch((e) => { console.error(e); process.exit(1) })
