import { Consumer, EventRouter, PermanentError, Producer, message } from 'kafkit'

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',')
const topic = `hello.greeting.sent.${Date.now()}`

const producer = new Producer({ brokers, topic, autocreateTopics: true })
await producer.send(message({ name: 'Ada' }).key('ada').eventType('greeting.sent'))
await producer.send(message({ name: '' }).key('nobody').eventType('greeting.sent'))
await producer.close()

const router = new EventRouter<{ 'greeting.sent': { name: string } }>().on('greeting.sent', ({ value }) => {
  if (!value.name) return Promise.reject(new PermanentError('a greeting needs a name')) // to the dead-letter topic
  console.log(`Hello, ${value.name}!`)
  return Promise.resolve()
})
const outcomes: string[] = []
const consumer = new Consumer({ brokers, groupId: 'hello', topics: [topic], startOffset: 'earliest', handler: router })
consumer.on('settled', ({ offset, outcome }) => outcomes.push(`${offset}: ${outcome}`))
await consumer.start()
while (outcomes.length < 2) await new Promise(resolve => setTimeout(resolve, 100))
await consumer.stop()

console.log(outcomes.join(', '), `(dead letters in ${topic}.dlq)`)
if (outcomes.join() !== '0: done,1: dead-letter') process.exitCode = 1
