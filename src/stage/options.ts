/**
 * The options of a `Stage` beside the consumer's own (which it takes as they are): one schema gives
 * the type, the defaults, the validation and the docs/options.md table.
 */
import { z } from 'zod'
import { defineOptions } from '../config/define-options.ts'
import { duration } from '../config/duration.ts'

export const stageOptions = defineOptions({
  component: 'stage',
  schema: z.strictObject({
    delivery: z
      .enum(['at-least-once', 'exactly-once'])
      .default('at-least-once')
      .describe(
        "`at-least-once`: each input is transformed, its outputs are produced idempotently and acknowledged, and only then is the input committed; for stages with side effects (a download, an upload). A crash between the outputs and the commit transforms the input again, so outputs may repeat. `exactly-once`: each batch of one partition is transformed in one Kafka transaction with its outputs and the input offsets; a `read_committed` reader sees each input's outputs once. The transform must have no side effects outside Kafka (it may run again after an abort)."
      ),
    transaction: z
      .strictObject({
        maxRecords: z
          .number()
          .int()
          .min(1)
          .default(500)
          .describe("`exactly-once`: inputs per transaction at most (one partition's consecutive records)."),
        maxMs: duration(0)
          .default(100)
          .describe('`exactly-once`: how long a transaction waits for more inputs before it commits what it has.'),
        stableWaitMs: duration(1)
          .default(60_000)
          .describe(
            "`exactly-once`: how long a new owner of a partition waits for the former owner's transaction to end before it fails the batch (and tries again)."
          )
      })
      .prefault({})
      .describe('Bounds of a transaction (`exactly-once`).'),
    outputTopic: z.string().min(1).optional().describe('The topic of outputs that name none.')
  })
})

export type StageOptions = z.input<typeof stageOptions.schema>
export type StageConfig = z.output<typeof stageOptions.schema>
