/**
 * Admin access for the entry points that take a connection (topology, operations): a user passes
 * `ConnectionOptions`; Kafkit's own components pass the admin client they already hold.
 */
import { Admin } from './client.ts'
import { clientOptionsOf, type ConnectionOptions } from './connection.ts'

/** Connection options, or (inside Kafkit) an open admin client to reuse. */
export type AdminSource = ConnectionOptions | Admin

/** Runs `fn` with an admin client: the one given, or one opened from the options and closed after. */
export async function withAdmin<T>(
  source: AdminSource,
  clientId: string,
  fn: (admin: Admin) => Promise<T>
): Promise<T> {
  if (source instanceof Admin) return fn(source)
  const admin = new Admin(clientOptionsOf(source, clientId))
  try {
    return await fn(admin)
  } finally {
    await admin.close()
  }
}
