/**
 * The options of a `Stage` beside the consumer's own (which it takes as they are): one schema gives
 * the type, the defaults, the validation and the docs/options.md table.
 */
import { z } from 'zod'
import { defineOptions } from '../config/define-options.ts'

export const stageOptions = defineOptions({
  component: 'stage',
  schema: z.strictObject({
    delivery: z
      .enum(['at-least-once'])
      .default('at-least-once')
      .describe(
        '`at-least-once`: each input is transformed, its outputs are produced idempotently and acknowledged, and only then is the input committed; for stages with side effects (a download, an upload). A crash between the outputs and the commit transforms the input again, so outputs may repeat (with the same event ids when the transform sets them).'
      ),
    outputTopic: z.string().min(1).optional().describe('The topic of outputs that name none.')
  })
})

export type StageOptions = z.input<typeof stageOptions.schema>
export type StageConfig = z.output<typeof stageOptions.schema>
