/**
 * What bench/outbox writes and publishes: order events of an e-commerce service, about 370 bytes of
 * JSON each (as the relay reads it back from jsonb), keyed by order over `keys` aggregates, with a
 * correlation id (one more header). Also the clock both processes share: CLOCK_MONOTONIC is one clock
 * for the whole machine, so a COMMIT time taken in the bench process and an acknowledgement time taken
 * in the relay process can be subtracted.
 */
import type { OutboxEvent } from '../../src/postgres/outbox.ts'

/** Milliseconds on the machine's monotonic clock (the same in every process, sub-millisecond). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}

const STATUSES = ['placed', 'paid', 'packed', 'shipped'] as const

export function orderEvent(i: number, keys: number): OutboxEvent {
  const order = i % keys
  const quantity = 1 + (i % 3)
  return {
    key: `order-${String(order).padStart(6, '0')}`,
    type: 'shop.order.updated',
    aggregateType: 'order',
    source: '/bench/orders',
    correlationId: `req-${i.toString(36).padStart(8, '0')}`,
    data: {
      orderId: `order-${String(order).padStart(6, '0')}`,
      sequence: i,
      status: STATUSES[i % STATUSES.length],
      customerId: `customer-${String((order * 7919) % 100_000).padStart(6, '0')}`,
      currency: 'EUR',
      totalCents: quantity * 1999 + 450,
      items: [
        { sku: `sku-${String(i % 500).padStart(4, '0')}`, quantity, priceCents: 1999 },
        { sku: 'sku-shipping', quantity: 1, priceCents: 450 }
      ],
      shippingAddress: { street: '42 Example Street', city: 'Prague', postcode: '110 00', country: 'CZ' }
    }
  }
}
