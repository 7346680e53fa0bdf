/**
 * The records of bench/stage and its transform, shared by main.ts (which produces the inputs) and every
 * client side (which transform them the same way). Only node: imports.
 */

/** One input: an order line as JSON, about 200 bytes. */
export interface OrderLine {
  id: string
  customer: string
  sku: string
  quantity: number
  priceCents: number
  currency: string
  createdAt: string
  note: string
}

/** The output: the input with one field added. */
export interface PricedOrderLine extends OrderLine {
  totalCents: number
}

/** The key of input `i`: KEYS distinct keys, spread over the partitions by the partitioner. */
export function keyOf(i: number, keys: number): string {
  return `customer-${String(i % keys).padStart(5, '0')}`
}

const NOTES = ['leave at the door', 'gift wrap, no invoice in the box', 'call before delivery', 'fragile']

export function orderLine(i: number, keys: number): OrderLine {
  return {
    id: `order-${String(i).padStart(9, '0')}`,
    customer: keyOf(i, keys),
    sku: `SKU-${String((i * 7919) % 100_000).padStart(6, '0')}`,
    quantity: 1 + (i % 9),
    priceCents: 199 + ((i * 104_729) % 50_000),
    currency: i % 3 === 0 ? 'USD' : 'EUR',
    createdAt: new Date(Date.UTC(2026, 11, 1) + i * 1000).toISOString(),
    note: NOTES[i % NOTES.length] as string
  }
}

/** The transform of every side: one output per input, the value with `totalCents` added. */
export function price(line: OrderLine): PricedOrderLine {
  return { ...line, totalCents: line.quantity * line.priceCents }
}

/** Milliseconds on the machine's monotonic clock (the same in every process; a --cpu-prof profile's clock). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}
