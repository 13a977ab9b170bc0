// Per-process CPU, system calls, context switches and memory from /proc (Linux), for processes the
// benchmarks start.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat times (getconf CLK_TCK; 100 on every Linux we target). */
const CLK_TCK = 100;

/** CPU time the process has used so far, in seconds: user, system and both. */
export function cpuSeconds(pid: number): { user: number; sys: number; total: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces (proc(5)).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, so 11 and 12 here (state, field 3, is 0).
  const user = Number(fields[11]) / CLK_TCK;
  const sys = Number(fields[12]) / CLK_TCK;
  return { user, sys, total: user + sys };
}

/** Resident set size in bytes (VmRSS of /proc/PID/status). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

interface Counters {
  user: number;
  sys: number;
  reads: number;
  writes: number;
  switches: number;
}

function counters(pid: number): Counters {
  const { user, sys } = cpuSeconds(pid);
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const num = (re: RegExp, s: string): number => Number(re.exec(s)?.[1] ?? NaN);
  return {
    user,
    sys,
    // syscr/syscw count read(2)/write(2)-family calls, writev included.
    reads: num(/syscr:\s+(\d+)/, io),
    writes: num(/syscw:\s+(\d+)/, io),
    // The main thread's: a voluntary switch is the event loop going to sleep in epoll_wait.
    switches: num(/^voluntary_ctxt_switches:\s+(\d+)/m, status),
  };
}

export interface ProcessUsage {
  /** % of one core, user + system. */
  cpuPct: number;
  /** % of one core spent in the kernel. */
  sysPct: number;
  reads: number;
  writes: number;
  /** Times the process went to sleep waiting (voluntary context switches of the main thread). */
  sleeps: number;
}

/** CPU, system calls and sleeps of several processes over a window: call `stop()` at its end. */
export interface UsageReport {
  processes: Record<string, ProcessUsage>;
  /** Busy CPU of the whole machine, % of one core (200 = both cores of a 2-core box). */
  machinePct: number;
  /** Process CPU (user + system) of the machine not used by the watched processes: other work on the box. */
  otherPct: number;
  /** CPU the hypervisor took away, % of one core. */
  stealPct: number;
}

/** CPU, system calls and sleeps of several processes, and of the machine, over a window. */
export function usageWindow(pids: Record<string, number>): { stop(): UsageReport } {
  const t0 = process.hrtime.bigint();
  const m0 = machineCpuSeconds();
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, counters(pid)]));
  return {
    stop() {
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      const m1 = machineCpuSeconds();
      const pct = (s: number): number => (s / wallS) * 100;
      const processes = Object.fromEntries(Object.entries(pids).map(([k, pid]) => {
        const b = before[k]!;
        const a = counters(pid);
        return [k, { cpuPct: pct(a.user + a.sys - b.user - b.sys), sysPct: pct(a.sys - b.sys), reads: a.reads - b.reads, writes: a.writes - b.writes, sleeps: a.switches - b.switches }];
      }));
      const machinePct = pct(m1.busy - m0.busy);
      const ours = Object.values(processes).reduce((sum, u) => sum + u.cpuPct, 0);
      return { processes, machinePct, otherPct: Math.max(0, pct(m1.tasks - m0.tasks) - ours), stealPct: pct(m1.steal - m0.steal) };
    },
  };
}

/**
 * CPU time of the whole machine so far, in seconds summed over cores: `busy` is all of it, `tasks` the
 * part charged to processes (user + system, which is what /proc/PID/stat can account for; interrupt
 * and softirq time, such as loopback packet delivery, is charged to no process), `steal` what the
 * hypervisor took.
 */
export function machineCpuSeconds(): { busy: number; tasks: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (proc(5)); guest time is already in user.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: (user + nice + system + irq + softirq) / CLK_TCK, tasks: (user + nice + system) / CLK_TCK, steal: steal / CLK_TCK };
}

/** TCP connections accepted so far, machine-wide (Tcp: PassiveOpens in /proc/net/snmp). */
export function tcpPassiveOpens(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  return Number(values[names.indexOf('PassiveOpens')]);
}
