// kafkajs group consumer for test_groups.py:
//   node group.js BOOTSTRAP TOPIC GROUP N  -> consumes N messages in a group, prints JSON
const { Kafka, logLevel } = require('kafkajs')
const [, , bootstrap, topic, groupId, n] = process.argv
const kafka = new Kafka({ clientId: 'strom-group-test', brokers: [bootstrap], logLevel: logLevel.ERROR })

async function main() {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const seen = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${seen.length} messages`)), 60000)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen.push({ partition, offset: message.offset, value: message.value.toString() })
        if (seen.length >= Number(n)) { clearTimeout(timer); resolve() }
      },
    }).catch(reject)
  })
  await consumer.disconnect()
  console.log(JSON.stringify(seen))
}
main().catch((e) => { console.error(e); process.exit(1) })
