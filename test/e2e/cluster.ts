/**
 * Cluster in a box: the part of Kubernetes kubepeers depends on, on one Linux machine, as root.
 *
 * - a "node" network namespace with a bridge `br0` (10.244.0.1) and a real knotd authoritative for
 *   cluster.local, listening on 10.244.0.1:53;
 * - one network namespace per pod, with a veth on that bridge, its own /32 address routed through the
 *   node (as Calico does) and permanent neighbour entries on both sides, so that no ARP entry is ever
 *   learned (the kernel's one neighbour table would overflow at ~64 pods); flooding is off on the bridge
 *   ports, IPv6 is off everywhere;
 * - per-pod /etc/hosts and /etc/resolv.conf exactly as kubelet writes them (via /etc/netns/<name>/),
 *   the UTS hostname `<job>-<i>`, env `JOB_COMPLETION_INDEX`; the pod's program runs as nobody with no
 *   capabilities, from a read-only copy of the package ("the image");
 * - Ready = the pod's A record and its entry in the Service's A set are added by RFC 2136 dynamic update
 *   (and removed when it is not Ready), standing in for EndpointSlices -> CoreDNS. With
 *   `publishNotReadyAddresses` (what JobSet and LeaderWorkerSet ask of their Services) the records are
 *   added when the pod is created, before its program starts, and a killed (terminating) pod stays listed;
 * - with `jobSet`, a JobSet-shaped run: pods `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>` under the
 *   subdomain JobSet picks, `JOB_COMPLETION_INDEX` = the pod index in its child Job, and the labels JobSet
 *   puts on its pods in a downward-API-format labels file (its path in env `KUBEPEERS_LABELS_FILE`: the
 *   box has no mount namespace per pod to put it at /etc/podinfo/labels).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile, chmod } from 'node:fs/promises';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Knot, podRecords, run, type DnsCounters } from '../helpers/knot.js';
import { Unbound, type CacheCounters } from '../helpers/unbound.js';
import { kubeletHosts } from '../helpers/pods.js';

const NODE_IP = '10.244.0.1';
const BRIDGE_MAC = '02:00:0a:f4:00:01';
const PREFIX = 'kpbox';
const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../..');

/** A JobSet-shaped run in the box (see {@link BoxOptions.jobSet}). */
export interface BoxJobSet {
  /** `metadata.name`. */
  name: string;
  /** `spec.network.subdomain`. Default: the JobSet name, as JobSet does. */
  subdomain?: string;
  /** `spec.replicatedJobs` in order: name, replicas (child Jobs) and pods per child Job. */
  replicatedJobs: { name: string; replicas: number; podsPerJob: number }[];
  /** `spec.coordinator`: adds the `jobset.sigs.k8s.io/coordinator` label. Default: none. */
  coordinator?: { replicatedJob: string; jobIndex: number; podIndex: number };
}

export interface BoxOptions {
  job?: string;
  /**
   * Run a JobSet: pod `index` (0..size-1) is the `index`-th pod counting through the replicated jobs in
   * order, then job index, then pod index; `job` and `svc` default to its name and subdomain. Default: an
   * Indexed Job `<job>-<index>`.
   */
  jobSet?: BoxJobSet;
  /**
   * The Service publishes not-ready addresses: a pod's records appear when it is created (before its
   * program runs) and stay while it is killed (a terminating pod); `replace` swaps them for the new pod's.
   * Default: false (records follow markReady / markNotReady).
   */
  publishNotReadyAddresses?: boolean;
  /** Pod `index`'s hostname, as another controller names its pods (LeaderWorkerSet). Default: as `jobSet` or `<job>-<index>`. */
  hostname?: (index: number) => string;
  /** Env a controller puts into pod `index` (LWS_*, PET_*), under PodSpec.env. Default: none. */
  podEnv?: (index: number) => Record<string, string>;
  /** The pods belong to an Indexed Job (env JOB_COMPLETION_INDEX). Default: true; false for StatefulSet pods (LeaderWorkerSet). */
  indexedJob?: boolean;
  svc?: string;
  namespace?: string;
  /** TTL of the records (CoreDNS: 5). */
  ttl?: number;
  /** SOA minimum: negative-caching TTL (CoreDNS: 5). */
  soaMinimum?: number;
  /**
   * Put a caching resolver (unbound, caching up to 30 s, NXDOMAIN for the SOA minimum) at the pods'
   * nameserver address, in front of knotd, as CoreDNS's `cache 30` or NodeLocal DNSCache are. Default: no.
   */
  cache?: boolean;
}

export interface PodSpec {
  /** argv of the pod's program, run inside the image directory. */
  command: string[];
  /** Extra env (JOB_COMPLETION_INDEX and HOSTNAME are set by the box). */
  env?: Record<string, string>;
  /** Run as root with the default capabilities (as a default container), e.g. for ping. Default: nobody, none. */
  root?: boolean;
  /**
   * A file system of the pod's own, as a container's: its own mount namespace and root, where directories
   * can be hidden and volumes mounted. Default: none (the pod sees the machine's file system).
   */
  fs?: PodFileSystem;
}

/**
 * The file system a pod sees when its spec has `fs`: the machine's (every top-level directory bound into
 * a root of the pod's own), less the directories hidden, plus the volumes; the pod's program runs in it
 * as it would in a container (chrooted, as nobody unless `root`). The mounts live in the pod's own mount
 * namespace: the machine sees none of them, and they vanish with the pod's processes.
 */
export interface PodFileSystem {
  /**
   * Directories the pod cannot see: each is covered by an empty read-only tmpfs. Absolute paths of
   * existing directories without symbolic links in them (realpath), e.g. the directory holding `node`.
   * Default: none.
   */
  hide?: string[];
  /**
   * The top-level directories of the machine's root that the pod sees, by name (e.g. `['usr', 'etc',
   * 'dev', 'proc', 'sys']`, as an image would hold); top-level symbolic links (`bin -> usr/bin`) are
   * always there. Default: every one.
   */
  only?: string[];
  /**
   * Volumes: directories of the machine mounted at `mountPath`, which must be a new top-level path such
   * as `/kp` (as an emptyDir mounted at /kp). Read-write unless `readOnly`. Default: none.
   */
  volumes?: { mountPath: string; hostPath: string; readOnly?: boolean }[];
  /**
   * Working directory of the program, in the pod's file system. Default: the image directory (under the
   * machine's temporary directory: with `only`, give one that the pod has, such as `/`).
   */
  workdir?: string;
}

/** A pod whose namespace is set up and whose program has not been started (see preparePods). */
export interface PreparedPod {
  index: number;
  ip: string;
  netns: string;
  hostname: string;
}

export interface Pod {
  index: number;
  ip: string;
  netns: string;
  hostname: string;
  process: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves when the process has exited (and been reaped) and its output was read (at most 1 s later). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /**
   * Resolves once the process has exited and its stdout and stderr have ended: only then do `stdout` and
   * `stderr` hold all it wrote (`exited` can come first, with output still in the pipes). Never resolves
   * while a process the program left behind still holds them open.
   */
  closed: Promise<void>;
  ready: boolean;
}

/** Kernel counters that must stay 0 in a healthy run (summed over the box's namespaces). */
export interface KernelCounters {
  UdpSndbufErrors: number;
  IpOutDiscards: number;
  UdpRcvbufErrors: number;
  /** Namespaces with a non-zero counter, for the error message. */
  offenders: string[];
}

let boxes = 0;

export class ClusterInABox {
  readonly job: string;
  readonly svc: string;
  readonly namespace: string;
  readonly node: string;
  readonly pods = new Map<number, Pod>();
  readonly spawned: number[] = [];
  private slot = 0;
  private controlSession: KnotControlSession | undefined;
  private readonly namespaces: string[] = [];
  readonly jobSet: BoxJobSet | undefined;
  readonly publishNotReadyAddresses: boolean;
  private readonly options: BoxOptions;

  private constructor(
    readonly id: string,
    readonly dir: string,
    readonly image: string,
    readonly knot: Knot,
    readonly cache: Unbound | undefined,
    options: BoxOptions,
  ) {
    this.options = options;
    this.jobSet = options.jobSet;
    this.publishNotReadyAddresses = options.publishNotReadyAddresses ?? false;
    this.job = options.job ?? options.jobSet?.name ?? 'example-job';
    this.svc = options.svc ?? options.jobSet?.subdomain ?? options.jobSet?.name ?? 'headless-svc';
    this.namespace = options.namespace ?? 'default';
    this.node = `${id}-node`;
  }

  /** Creates the node namespace, the bridge and the DNS server. Removes leftovers of dead runs first. */
  static async create(options: BoxOptions = {}): Promise<ClusterInABox> {
    await sweepDeadBoxes();
    const id = `${PREFIX}${process.pid}x${++boxes}`;
    const dir = await mkdtemp(join(tmpdir(), `${id}-`));
    await chmod(dir, 0o755);
    const node = `${id}-node`;
    await sh(`
      ip netns add ${node}
      ip netns exec ${node} sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; echo 1 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects; echo 0 > /proc/sys/net/ipv4/conf/default/send_redirects'
      ip -n ${node} link set lo up
      ip -n ${node} link add br0 address ${BRIDGE_MAC} type bridge
      ip -n ${node} addr add ${NODE_IP}/16 dev br0
      ip -n ${node} link set br0 up
    `).catch(async (err: unknown) => {
      await run('ip', ['netns', 'del', node]).catch(() => {});
      throw err;
    });
    // With a cache, knotd moves behind it to the node's loopback; the pods always ask NODE_IP:53.
    const knot = await Knot.start({
      netns: node,
      address: options.cache ? '127.0.0.1' : NODE_IP,
      port: options.cache ? 5300 : 53,
      // Two sockets (SO_REUSEPORT) drained in parallel: one overflowed its receive buffer when 64 pods
      // started polling at once (UdpRcvbufErrors in the node namespace), as a single CoreDNS would not.
      udpWorkers: 2,
      ttl: options.ttl ?? 5,
      soaMinimum: options.soaMinimum ?? 5,
    }).catch(async (err: unknown) => {
      await run('ip', ['netns', 'del', node]).catch(() => {});
      throw err;
    });
    const cache = options.cache
      ? await Unbound.start({ netns: node, address: NODE_IP, port: 53, upstream: '127.0.0.1@5300' }).catch(
          async (err: unknown) => {
            await knot.stop().catch(() => {});
            await run('ip', ['netns', 'del', node]).catch(() => {});
            throw err;
          },
        )
      : undefined;
    const image = await buildImage(dir);
    const box = new ClusterInABox(id, dir, image, knot, cache, options);
    box.namespaces.push(node);
    return box;
  }

  /** The node namespace's DNS server address, as pods see it in resolv.conf. */
  get dnsAddress(): string {
    return NODE_IP;
  }

  /** The A records of `name` (absolute or not) as the box's DNS serves them to a pod in `netns` (kdig). */
  async dig(netns: string, name: string): Promise<string[]> {
    const out = await run('ip', ['netns', 'exec', netns, 'kdig', '+short', `@${NODE_IP}`, name, 'A']);
    return out.trim().split('\n').filter(Boolean);
  }

  /** `<job>-<index>.<svc>.<ns>.svc.cluster.local`: the FQDN of an Indexed Job's pod, as frameworks get it. */
  fqdn(index: number): string {
    return `${this.job}-${index}.${this.svc}.${this.namespace}.svc.cluster.local`;
  }

  /** Where pod `index` sits in the JobSet: its replicated job, job index and pod index. */
  jobSetPosition(index: number): { replicatedJob: string; jobIndex: number; podIndex: number } {
    let k = index;
    for (const r of this.jobSet?.replicatedJobs ?? []) {
      if (k < r.replicas * r.podsPerJob)
        return { replicatedJob: r.name, jobIndex: Math.floor(k / r.podsPerJob), podIndex: k % r.podsPerJob };
      k -= r.replicas * r.podsPerJob;
    }
    throw new Error(`cluster in a box: the JobSet has no pod ${index}`);
  }

  /** Pod `index`'s hostname: `<job>-<index>`, or `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>`. */
  hostnameOf(index: number): string {
    if (this.options.hostname) return this.options.hostname(index);
    if (!this.jobSet) return `${this.job}-${index}`;
    const p = this.jobSetPosition(index);
    return `${this.jobSet.name}-${p.replicatedJob}-${p.jobIndex}-${p.podIndex}`;
  }

  /** The labels JobSet puts on pod `index`, as a downward API labels file writes them. */
  private jobSetLabels(index: number): string {
    const js = this.jobSet!;
    const p = this.jobSetPosition(index);
    let before = 0;
    for (const r of js.replicatedJobs) {
      if (r.name === p.replicatedJob) break;
      before += r.replicas;
    }
    const own = js.replicatedJobs.find((r) => r.name === p.replicatedJob)!;
    const labels: Record<string, string> = {
      'batch.kubernetes.io/job-completion-index': String(p.podIndex),
      'jobset.sigs.k8s.io/global-replicas': String(js.replicatedJobs.reduce((n, r) => n + r.replicas, 0)),
      'jobset.sigs.k8s.io/job-global-index': String(before + p.jobIndex),
      'jobset.sigs.k8s.io/job-index': String(p.jobIndex),
      'jobset.sigs.k8s.io/jobset-name': js.name,
      'jobset.sigs.k8s.io/jobset-uid': `${this.id}-uid`,
      'jobset.sigs.k8s.io/replicatedjob-name': p.replicatedJob,
      'jobset.sigs.k8s.io/replicatedjob-replicas': String(own.replicas),
      'jobset.sigs.k8s.io/restart-attempt': '0',
    };
    if (js.coordinator) {
      const c = js.coordinator;
      labels['jobset.sigs.k8s.io/coordinator'] =
        `${js.name}-${c.replicatedJob}-${c.jobIndex}-${c.podIndex}.${this.svc}`;
    }
    // kubelet writes `key="value"` lines sorted by key, the value quoted as Go's %q.
    return Object.keys(labels)
      .sort()
      .map((k) => `${k}=${JSON.stringify(labels[k])}`)
      .join('\n');
  }

  private nextAddress(): { ip: string; mac: string; slot: number } {
    const slot = this.slot++;
    const hi = 1 + Math.floor(slot / 250);
    const lo = 1 + (slot % 250);
    if (hi > 250) throw new Error('cluster in a box: out of pod addresses');
    const hex = (n: number): string => n.toString(16).padStart(2, '0');
    return { ip: `10.244.${hi}.${lo}`, mac: `02:00:0a:f4:${hex(hi)}:${hex(lo)}`, slot };
  }

  /**
   * Creates the pods' namespaces and starts their programs (not Ready yet: no DNS records). One call
   * sets up many pods with a few batched `ip` commands.
   */
  async startPods(indices: number[], spec: PodSpec): Promise<Pod[]> {
    return this.launchPods(await this.preparePods(indices), spec);
  }

  /**
   * The first half of startPods: creates the pods' namespaces, addresses and /etc/netns files, and
   * starts nothing. launchPods then spawns every program in one synchronous loop, so that a benchmark
   * can tell the moment the pods were launched (and no pod runs while the others are still being set up).
   */
  async preparePods(indices: number[]): Promise<PreparedPod[]> {
    const planned = indices.map((index) => ({ index, ...this.nextAddress() }));
    const netnsOf = (p: { index: number; slot: number }): string => `${this.id}-p${p.index}s${p.slot}`;
    const nodeBatch: string[] = [];
    const bridgeBatch: string[] = [];
    const script: string[] = [];
    for (const p of planned) {
      const ns = netnsOf(p);
      this.namespaces.push(ns);
      script.push(
        `ip netns add ${ns}`,
        `ip netns exec ${ns} sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; echo 0 > /proc/sys/net/ipv4/conf/all/accept_redirects'`,
      );
      nodeBatch.push(
        `link add v${p.slot} type veth peer name eth0 address ${p.mac} netns ${ns}`,
        `link set v${p.slot} master br0 up`,
        `route add ${p.ip}/32 dev br0`,
        `neigh replace ${p.ip} lladdr ${p.mac} dev br0 nud permanent`,
      );
      bridgeBatch.push(
        `link set dev v${p.slot} flood off mcast_flood off bcast_flood off learning off`,
        `fdb replace ${p.mac} dev v${p.slot} master static`,
      );
    }
    const podBatches = planned.map((p) =>
      [
        `link set lo up`,
        `addr add ${p.ip}/32 dev eth0`,
        `link set eth0 up`,
        `route add ${NODE_IP} dev eth0 scope link`,
        `route add default via ${NODE_IP} dev eth0`,
        `neigh replace ${NODE_IP} lladdr ${BRIDGE_MAC} dev eth0 nud permanent`,
      ].join('\n'),
    );
    await sh(script.join('\n'));
    await run('ip', ['-n', this.node, '-batch', '-'], nodeBatch.join('\n') + '\n');
    await run('bridge', ['-n', this.node, '-batch', '-'], bridgeBatch.join('\n') + '\n');
    await Promise.all(
      planned.map((p, k) => run('ip', ['-n', netnsOf(p), '-batch', '-'], podBatches[k]! + '\n')),
    );

    const prepared: PreparedPod[] = [];
    for (const p of planned) {
      const ns = netnsOf(p);
      const hostname = this.hostnameOf(p.index);
      const fqdn = `${hostname}.${this.svc}.${this.namespace}.svc.cluster.local`;
      const etc = join('/etc/netns', ns);
      await mkdir(etc, { recursive: true });
      // What kubelet writes for a pod with hostname and subdomain, and dnsPolicy ClusterFirst.
      await writeFile(join(etc, 'hosts'), kubeletHosts(p.ip, fqdn, hostname));
      await writeFile(
        join(etc, 'resolv.conf'),
        `search ${this.namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver ${NODE_IP}\noptions ndots:5\n`,
      );
      if (this.jobSet) {
        const podinfo = join(this.dir, 'podinfo', ns);
        await mkdir(podinfo, { recursive: true, mode: 0o755 });
        await writeFile(join(podinfo, 'labels'), this.jobSetLabels(p.index), { mode: 0o644 });
        await chmod(join(this.dir, 'podinfo'), 0o755);
      }
      prepared.push({ index: p.index, ip: p.ip, netns: ns, hostname });
    }
    if (this.publishNotReadyAddresses) {
      // Endpoints with publishNotReadyAddresses: listed as soon as the pod has an address.
      await this.knot.update(
        prepared.flatMap((p) => podRecords('add', p.hostname, this.svc, this.namespace, p.ip)),
      );
    }
    return prepared;
  }

  /** The second half of startPods: starts the programs of prepared pods, synchronously, in order. */
  launchPods(prepared: PreparedPod[], spec: PodSpec): Pod[] {
    return prepared.map((p) => this.spawnPod(p.index, p.ip, p.netns, p.hostname, spec));
  }

  private spawnPod(index: number, ip: string, netns: string, hostname: string, spec: PodSpec): Pod {
    const child = this.spawnIn(index, netns, hostname, spec);
    const pod: Pod = {
      index,
      ip,
      netns,
      hostname,
      process: child,
      stdout: '',
      stderr: '',
      ready: false,
      // Resolved once the output is read too (`close`), or 1 s after the exit when a process the program
      // left behind holds the pipes: `exit` can come with output still in them (a 64-pod run once read
      // a pod's stdout cut after its first line). `at` is the exit's time.
      exited: new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          const exit = { code, signal, at: performance.now() };
          const done = (): void => resolve(exit);
          child.on('close', done);
          setTimeout(done, 1000).unref();
        }),
      ),
      closed: new Promise((resolve) => child.on('close', () => resolve())),
    };
    child.stdout!.on('data', (d: Buffer) => (pod.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (pod.stderr += d.toString()));
    if (this.publishNotReadyAddresses) pod.ready = true; // listed: markNotReady withdraws it
    this.pods.set(index, pod);
    return pod;
  }

  /**
   * Runs an init container of a prepared pod: a program in the pod's network namespace, with its hostname
   * and env, run to completion before launchPods starts the pod's main program (as kubelet runs init
   * containers). Its file system is its own (`spec.fs`), as each container's is; volumes are shared by
   * naming the same host directory. Resolves with how it exited and what it printed.
   */
  async runInit(
    pod: PreparedPod,
    spec: PodSpec,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
    const child = this.spawnIn(pod.index, pod.netns, pod.hostname, spec);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // As for pods: once the output is read, or 1 s after the exit when something left behind holds it.
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('exit', (c, sig) => {
        child.on('close', () => resolve([c, sig]));
        setTimeout(() => resolve([c, sig]), 1000).unref();
      }),
    );
    return { code, signal, stdout, stderr };
  }

  /** Starts a program in a pod's namespaces, as the pod's user (see PodSpec). */
  private spawnIn(index: number, netns: string, hostname: string, spec: PodSpec): ChildProcess {
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: '/nonexistent',
      ...(this.options.indexedJob === false
        ? {}
        : { JOB_COMPLETION_INDEX: String(this.jobSet ? this.jobSetPosition(index).podIndex : index) }),
      ...(this.jobSet ? { KUBEPEERS_LABELS_FILE: join(this.dir, 'podinfo', netns, 'labels') } : {}),
      ...this.options.podEnv?.(index),
      ...spec.env,
    };
    const setup = spec.fs
      ? fileSystemArgs(spec.fs, join(this.dir, 'roots', netns), this.image, !spec.root, env)
      : undefined;
    // ip netns exec (mount /etc/netns files) -> unshare --uts (own hostname) -> setpriv (nobody, no caps).
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        netns,
        'unshare',
        '--uts',
        ...(setup ? ['--mount'] : []),
        '--',
        'sh',
        '-c',
        setup
          ? setup.script
          : spec.root
            ? 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"'
            : 'echo "$0" > /proc/sys/kernel/hostname && exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all -- "$@"',
        hostname,
        ...spec.command,
      ],
      { cwd: this.image, env: setup?.env ?? env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.spawned.push(child.pid!);
    return child;
  }

  private records(pod: Pod, op: 'add' | 'delete'): string[] {
    return podRecords(op, pod.hostname, this.svc, this.namespace, pod.ip);
  }

  /** Marks pods Ready: their records appear in DNS (one dynamic update). */
  async markReady(...indices: number[]): Promise<void> {
    const pods = indices.map((i) => this.pod(i));
    await this.knot.update(pods.flatMap((p) => this.records(p, 'add')));
    for (const p of pods) p.ready = true;
  }

  /**
   * Marks pods Ready through knotd's control socket instead of a dynamic update: one zone transaction
   * (zone-begin, zone-set of each record, zone-commit) written to a long-lived `knotc`, resolved when the
   * commit is answered (the records are then served). knotd runs dynamic updates as zone events, which it
   * schedules in whole seconds: about one update in 200 (more on a loaded machine) is answered 1 s late,
   * a hole a benchmark's Ready schedule cannot afford. Calls may overlap: transactions are applied, and
   * resolve, in call order. Nothing else in the box changes; markNotReady withdraws these records too.
   */
  async markReadyByControl(...indices: number[]): Promise<void> {
    const pods = indices.map((i) => this.pod(i));
    this.controlSession ??= new KnotControlSession(join(this.knot.dir, 'knot.sock'));
    const zone = this.knot.zone;
    const commands = [`zone-begin ${zone}`];
    for (const p of pods) {
      // The same two records as podRecords(): the pod's own name and its entry in the Service's A set.
      commands.push(
        `zone-set ${zone} ${p.hostname}.${this.svc}.${this.namespace}.svc.${zone}. 5 A ${p.ip}`,
        `zone-set ${zone} ${this.svc}.${this.namespace}.svc.${zone}. 5 A ${p.ip}`,
      );
    }
    commands.push(`zone-commit ${zone}`);
    await this.controlSession.send(commands);
    for (const p of pods) p.ready = true;
  }

  /** Marks pods not Ready: their records disappear. */
  async markNotReady(...indices: number[]): Promise<void> {
    const pods = indices.map((i) => this.pod(i)).filter((p) => p.ready);
    if (pods.length === 0) return;
    await this.knot.update(pods.flatMap((p) => this.records(p, 'delete')));
    for (const p of pods) p.ready = false;
  }

  pod(index: number): Pod {
    const p = this.pods.get(index);
    if (!p) throw new Error(`no pod ${index}`);
    return p;
  }

  /** Kills a pod's program (SIGKILL by default), withdraws its records and deletes its namespace. */
  async kill(index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const pod = this.pod(index);
    // A terminating pod stays listed where the Service publishes not-ready addresses.
    if (!this.publishNotReadyAddresses) await this.markNotReady(index);
    pod.process.kill(signal);
    await pod.exited;
    await deleteNamespace(pod.netns);
  }

  /** Kills pod `index` and starts its replacement: same hostname, new address, new namespace. */
  async replace(index: number, spec: PodSpec): Promise<Pod> {
    await this.kill(index);
    // The old pod is gone at last: its records go (they stayed while it terminated).
    if (this.publishNotReadyAddresses) await this.markNotReady(index);
    const [pod] = await this.startPods([index], spec);
    return pod!;
  }

  /** Stops the DNS server (records and counters are kept for its return). */
  dnsDown(): Promise<void> {
    return this.knot.halt();
  }

  dnsUp(): Promise<void> {
    return this.knot.run();
  }

  /** The caching resolver's counters (what the pods asked), when the box has one. */
  cacheCounters(): Promise<CacheCounters> | undefined {
    return this.cache?.counters();
  }

  /** The authoritative DNS server's query counters since the box was created. */
  dnsCounters(): Promise<DnsCounters> {
    return this.knot.counters();
  }

  /** /proc/net/snmp of every live namespace of the box, by namespace name. */
  async snmp(): Promise<Map<string, Record<string, Record<string, number>>>> {
    const live = (await listNamespaces()).filter((n) => n.startsWith(`${this.id}-`));
    const out = await sh(live.map((n) => `echo "== ${n}"; ip netns exec ${n} cat /proc/net/snmp`).join('\n'));
    const result = new Map<string, Record<string, Record<string, number>>>();
    for (const block of out.split('== ').slice(1)) {
      const [name, ...lines] = block.split('\n');
      result.set(name!, parseSnmp(lines.join('\n')));
    }
    return result;
  }

  /** Counters that must stay 0 in a healthy run, summed over the box's namespaces. */
  async kernelCounters(): Promise<KernelCounters> {
    const total: KernelCounters = { UdpSndbufErrors: 0, IpOutDiscards: 0, UdpRcvbufErrors: 0, offenders: [] };
    for (const [name, snmp] of await this.snmp()) {
      const c = {
        UdpSndbufErrors: snmp.Udp?.SndbufErrors ?? 0,
        IpOutDiscards: snmp.Ip?.OutDiscards ?? 0,
        UdpRcvbufErrors: snmp.Udp?.RcvbufErrors ?? 0,
      };
      total.UdpSndbufErrors += c.UdpSndbufErrors;
      total.IpOutDiscards += c.IpOutDiscards;
      total.UdpRcvbufErrors += c.UdpRcvbufErrors;
      if (c.UdpSndbufErrors + c.IpOutDiscards + c.UdpRcvbufErrors > 0)
        total.offenders.push(`${name}: ${JSON.stringify(c)}`);
    }
    return total;
  }

  /** Kills every process, deletes every namespace and file of the box. Safe to call twice. */
  async destroy(): Promise<void> {
    for (const pod of this.pods.values())
      if (pod.process.exitCode === null && pod.process.signalCode === null) pod.process.kill('SIGKILL');
    await Promise.all([...this.pods.values()].map((p) => p.exited));
    await this.controlSession?.close();
    await this.cache?.stop().catch(() => {});
    await this.knot.stop().catch(() => {});
    for (const ns of this.namespaces) await deleteNamespace(ns);
    await rm(this.dir, { recursive: true, force: true });
  }

  /** What the box left behind: namespaces, live processes it started, files. Empty after destroy(). */
  async leftovers(): Promise<string[]> {
    const found: string[] = [];
    for (const ns of await listNamespaces()) if (ns.startsWith(`${this.id}-`)) found.push(`netns ${ns}`);
    for (const pid of [...this.spawned, ...this.knotPids()]) if (isAlive(pid)) found.push(`process ${pid}`);
    if (existsSync(this.dir)) found.push(`dir ${this.dir}`);
    for (const e of existsSync('/etc/netns') ? await readdir('/etc/netns') : [])
      if (e.startsWith(`${this.id}-`)) found.push(`/etc/netns/${e}`);
    return found;
  }

  private knotPids(): number[] {
    return [this.knot.pid, this.cache?.pid, this.controlSession?.pid].filter(
      (p): p is number => p !== undefined,
    );
  }
}

/**
 * An interactive `knotc` on knotd's control socket (a file: no namespace needed). It answers each command
 * with one line on stdout ("OK", or a zone-read's records) and reports errors on stderr; stdout is made
 * line-buffered (stdbuf) so that each answer arrives as it is given. A transaction resolves once its last
 * command is answered; any error fails it and every transaction queued behind it.
 */
class KnotControlSession {
  private readonly proc: ChildProcess;
  private readonly queue: { left: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private partial = '';
  private failure: Error | undefined;
  private readonly exited: Promise<void>;

  constructor(socket: string) {
    this.proc = spawn('stdbuf', ['-oL', '-eL', 'knotc', '-s', socket], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.stdin!.on('error', () => {}); // reported through exit
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.partial += d.toString();
      const lines = this.partial.split('\n');
      this.partial = lines.pop()!;
      for (let k = 0; k < lines.length; k++) {
        const head = this.queue[0];
        if (!head) continue;
        if (--head.left === 0) {
          this.queue.shift();
          head.resolve();
        }
      }
    });
    let stderr = '';
    this.proc.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      this.fail(new Error(`knotc: ${stderr.trim()}`));
    });
    this.proc.once('exit', (code) => this.fail(new Error(`knotc exited ${code}: ${stderr.trim()}`)));
  }

  get pid(): number | undefined {
    return this.proc.exitCode === null && this.proc.signalCode === null ? this.proc.pid : undefined;
  }

  /** Writes the commands at once; resolves when the last one is answered. */
  send(commands: string[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ left: commands.length, resolve, reject });
      this.proc.stdin!.write(commands.join('\n') + '\n');
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const t of this.queue.splice(0)) t.reject(this.failure);
  }

  async close(): Promise<void> {
    if (this.pid !== undefined) this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 2000).unref();
    await this.exited;
    clearTimeout(timer);
  }
}

/** Builds "the image": a world-readable copy of the built package and its runtime dependencies. */
async function buildImage(dir: string): Promise<string> {
  const image = join(dir, 'image');
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { name: string };
  const self = join(image, 'node_modules', pkg.name);
  await mkdir(self, { recursive: true });
  await cp(join(ROOT, 'package.json'), join(self, 'package.json'));
  // Not the standalone binary (npm run build:binary), ~100 MB that no pod runs from here.
  await cp(join(ROOT, 'dist'), join(self, 'dist'), {
    recursive: true,
    filter: (src) => !/[\\/]kubepeers-linux-x64[^\\/]*$/.test(src),
  });
  await cp(join(ROOT, 'example-workload'), join(image, 'example-workload'), { recursive: true });
  const seen = new Set<string>();
  const copyDeps = async (from: string): Promise<void> => {
    const manifest = JSON.parse(await readFile(join(from, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    for (const dep of Object.keys(manifest.dependencies ?? {})) {
      if (seen.has(dep)) continue;
      seen.add(dep);
      const src = join(ROOT, 'node_modules', dep);
      await cp(src, join(image, 'node_modules', dep), { recursive: true });
      await copyDeps(src);
    }
  };
  await copyDeps(ROOT);
  await sh(`chmod -R a+rX ${image}`);
  return image;
}

const SETPRIV_NOBODY = '--reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all';

/** A word for sh, quoted. */
function shq(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The script (for `sh -c`, run as root in the pod's own mount namespace, $0 the hostname, "$@" the
 * command) that builds a pod's file system at `root` (a directory of the box, the mount point of a
 * tmpfs) and runs the command chrooted there, and the env to run it with (the machine's PATH, for the
 * tools that do this; the pod's own PATH, `env.PATH`, is set last).
 */
function fileSystemArgs(
  fs: PodFileSystem,
  root: string,
  image: string,
  nobody: boolean,
  env: Record<string, string>,
): { script: string; env: Record<string, string> } {
  const where = (what: string, path: string, expected: string): Error =>
    new Error(`cluster in a box: ${what} ${JSON.stringify(path)} (PodSpec.fs): expected ${expected}`);
  for (const dir of fs.hide ?? []) {
    if (!isAbsolute(dir) || !existsSync(dir) || !statSync(dir).isDirectory())
      throw where('hidden directory', dir, 'the absolute path of an existing directory');
    if (realpathSync(dir) !== dir || dir === '/')
      throw where('hidden directory', dir, `a path without symbolic links (${realpathSync(dir)}), not /`);
  }
  for (const name of fs.only ?? []) {
    if (name.includes('/') || !existsSync(`/${name}`) || !statSync(`/${name}`).isDirectory())
      throw where('top-level directory', name, 'the name of a directory at the root, such as usr');
  }
  for (const v of fs.volumes ?? []) {
    if (!/^\/[^/]+$/.test(v.mountPath) || existsSync(v.mountPath))
      throw where(
        'volume mountPath',
        v.mountPath,
        'a top-level path that the machine does not have, such as /kp',
      );
    if (!isAbsolute(v.hostPath) || !existsSync(v.hostPath) || !statSync(v.hostPath).isDirectory())
      throw where('volume hostPath', v.hostPath, 'the absolute path of an existing directory');
  }
  mkdirSync(root, { recursive: true });
  const r = shq(root);
  const lines = [
    'set -eu',
    'echo "$0" > /proc/sys/kernel/hostname',
    `R=${r}`,
    'mount -t tmpfs -o mode=755 kpbox-root "$R"',
    // The machine's top-level entries: directories bound (with what is mounted below them), links copied.
    'for e in /* /.[!.]*; do',
    '  [ -e "$e" ] || [ -L "$e" ] || continue',
    ...(fs.only
      ? [
          `  case "$e" in '//'${fs.only.map((n) => `|${shq(`/${n}`)}`).join('')}) ;; *) [ -L "$e" ] || continue ;; esac`,
        ]
      : []),
    '  if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$R$e"',
    '  elif [ -d "$e" ]; then mkdir "$R$e" && mount --rbind "$e" "$R$e"; fi',
    'done',
    // The pod's root is itself below a bound directory: not inside itself.
    'if [ -d "$R$R" ]; then umount -l "$R$R"; fi',
    // setpriv, wherever the hidden directories put the machine's.
    'mkdir "$R/.kpbox" && : > "$R/.kpbox/setpriv" && mount --bind "$(command -v setpriv)" "$R/.kpbox/setpriv"',
    ...(fs.volumes ?? []).flatMap((v) => [
      `mkdir "$R"${shq(v.mountPath)} && mount --bind ${shq(v.hostPath)} "$R"${shq(v.mountPath)}`,
      ...(v.readOnly ? [`mount -o remount,bind,ro "$R"${shq(v.mountPath)}`] : []),
    ]),
    // (A directory below a top-level one that `only` leaves out is not there to hide.)
    ...(fs.hide ?? []).map(
      (dir) => `[ ! -d "$R"${shq(dir)} ] || mount -t tmpfs -o ro,mode=755 kpbox-hidden "$R"${shq(dir)}`,
    ),
    'u=$(command -v unshare)',
    'PATH=$KPBOX_POD_PATH && unset KPBOX_POD_PATH',
    `exec "$u" --root="$R" --wd=${shq(fs.workdir ?? image)} -- ${nobody ? `/.kpbox/setpriv ${SETPRIV_NOBODY} -- ` : ''}"$@"`,
  ];
  const machinePath = process.env.PATH ?? '/usr/bin:/bin';
  return {
    script: lines.join('\n'),
    env: { ...env, PATH: machinePath, KPBOX_POD_PATH: env.PATH ?? machinePath },
  };
}

function parseSnmp(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const lines = text.split('\n').filter(Boolean);
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [proto, ...keys] = lines[i]!.split(/\s+/);
    const values = lines[i + 1]!.split(/\s+/).slice(1);
    const name = proto!.replace(/:$/, '');
    out[name] = Object.fromEntries(keys.map((k, j) => [k, Number(values[j])]));
  }
  return out;
}

/** True while /proc/<pid> exists and is not a zombie. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

async function listNamespaces(): Promise<string[]> {
  const out = await run('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** Kills whatever still runs inside a namespace, then deletes it and its /etc/netns files. */
async function deleteNamespace(ns: string): Promise<void> {
  const pids = await run('ip', ['netns', 'pids', ns]).catch(() => '');
  for (const pid of pids.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run('ip', ['netns', 'del', ns]).catch(() => {});
  await rm(join('/etc/netns', ns), { recursive: true, force: true });
}

/** Removes namespaces left by boxes of processes that no longer exist (a crashed or killed test run). */
async function sweepDeadBoxes(): Promise<void> {
  for (const ns of await listNamespaces()) {
    const m = new RegExp(`^${PREFIX}(\\d+)x\\d+-`).exec(ns);
    if (m && !isAlive(Number(m[1]))) await deleteNamespace(ns);
  }
  for (const e of existsSync('/etc/netns') ? await readdir('/etc/netns') : []) {
    const m = new RegExp(`^${PREFIX}(\\d+)x\\d+-`).exec(e);
    if (m && !isAlive(Number(m[1]))) await rm(join('/etc/netns', e), { recursive: true, force: true });
  }
}

function sh(script: string): Promise<string> {
  return run('bash', ['-euo', 'pipefail', '-c', script]);
}
