/**
 * The CPUs a process may run on, as /proc/<pid>/status lists them (`0`, `1`, `0-1`): the benchmark's
 * clients report it so a results file shows they ran pinned. No imports, so a client process loads
 * nothing more for it.
 */
import { readFileSync } from 'node:fs'

export function allowedCpus(pid: number | 'self' = 'self'): string {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return /^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1]?.trim() ?? 'unknown'
  } catch {
    return 'unknown'
  }
}
