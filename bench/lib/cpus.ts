/**
 * The CPUs a process may run on, as /proc/<pid>/status lists them (`0`, `1`, `0-1`): the benchmark's
 * clients report it so a results file shows they ran pinned. Only node: imports, so a client process loads
 * nothing more for it.
 */
import { readFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'

export function allowedCpus(pid: number | 'self' = 'self'): string {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1]?.trim() ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

/** The machine a results file was measured on: cores, memory, and the load before and after the run. */
export function machineFacts(loadBefore: number[]): Record<string, unknown> {
  return { cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), loadBefore, loadAfter: loadavg() }
}
