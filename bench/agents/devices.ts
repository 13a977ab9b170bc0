// Device credentials of the many-agents benchmark: derived from the index, so the process that
// registers them and the load generators agree without passing 10,000 secrets around.
export function benchDevice(i: number): { id: string; secret: string } {
  return { id: `d_bench${String(i).padStart(6, '0')}`, secret: `bench-secret-${i}-not-for-production` };
}
