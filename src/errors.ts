/**
 * Every error kubepeers throws or rejects with is a {@link KubepeersError} with a stable literal `code`.
 * Match on `code`, not on the message: messages carry the names, addresses, ports, rcodes and timeouts
 * involved and may be worded better in a later release.
 */
export type KubepeersErrorCode =
  | 'ERR_KUBEPEERS_CONFIG'
  | 'ERR_KUBEPEERS_TIMEOUT'
  | 'ERR_KUBEPEERS_ABORTED'
  | 'ERR_KUBEPEERS_DNS'
  | 'ERR_KUBEPEERS_CONNECT'
  | 'ERR_KUBEPEERS_HANDSHAKE'
  | 'ERR_KUBEPEERS_LISTEN'
  | 'ERR_KUBEPEERS_OUTPUT'
  /** CLI only: it failed with an error that is not a KubepeersError (a bug: please report it). */
  | 'ERR_KUBEPEERS_UNEXPECTED';

/** Base class of all kubepeers errors. The low-level error, if any, is on `cause`. */
export class KubepeersError extends Error {
  /** Stable machine-readable code. */
  readonly code: KubepeersErrorCode;

  constructor(code: KubepeersErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A wrong or missing setting, found before any network I/O. `source` says where the value came from
 * (`option jobName`, `env JOB_COMPLETION_INDEX`, `/etc/hosts`, ...).
 */
export class ConfigError extends KubepeersError {
  /** The setting, e.g. `index`. */
  readonly setting: string;
  /** Where the value came from, e.g. `env JOB_COMPLETION_INDEX`. */
  readonly source: string;
  /** The offending value, or `undefined` when it was missing. */
  readonly value: unknown;
  /** What was expected instead. */
  readonly expected: string;

  constructor(
    setting: string,
    source: string,
    value: unknown,
    expected: string,
    options?: { cause?: unknown },
  ) {
    const shown = value === undefined ? 'is missing' : `is ${JSON.stringify(value)}`;
    super('ERR_KUBEPEERS_CONFIG', `${setting} ${shown} (from ${source}); expected ${expected}`, options);
    this.setting = setting;
    this.source = source;
    this.value = value;
    this.expected = expected;
  }
}

/**
 * Why a DNS query failed after every nameserver and retry:
 * - `timeout`: no reply in time;
 * - `servfail`, `refused`, `formerr`, `notimp`: the server answered with that rcode;
 * - `network`: a socket error, or a TCP connection closed or answered with garbage;
 * - `truncated`: the answer did not fit even over TCP (the server set TC on its TCP reply: more than a
 *   DNS message's 64 KiB, about 4 000 IPv4 addresses). The addresses it carries are not all of them,
 *   so the query fails rather than pass off a part as the whole.
 */
export type DnsFailureReason =
  'timeout' | 'servfail' | 'refused' | 'formerr' | 'notimp' | 'network' | 'truncated';

/** A DNS query that got no usable answer from any nameserver. NXDOMAIN and NODATA are answers, not errors. */
export class DnsError extends KubepeersError {
  readonly reason: DnsFailureReason;
  readonly hostname: string;
  readonly rrtype: string;
  /** The nameservers tried, as `address:port`. */
  readonly servers: readonly string[];

  constructor(
    reason: DnsFailureReason,
    hostname: string,
    rrtype: string,
    servers: readonly string[],
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      'ERR_KUBEPEERS_DNS',
      `DNS ${rrtype} ${hostname} failed: ${reason} (${detail}; servers ${servers.join(', ')})`,
      options,
    );
    this.reason = reason;
    this.hostname = hostname;
    this.rrtype = rrtype;
    this.servers = servers;
  }
}

/** A TCP connection to a peer's responder that did not open. */
export class ConnectError extends KubepeersError {
  readonly address: string;
  readonly port: number;
  /** The errno code (`ECONNREFUSED`, `EHOSTUNREACH`, ...) or `ETIMEDOUT` for our own connect timeout. */
  readonly errno: string;

  constructor(address: string, port: number, errno: string, options?: { cause?: unknown }) {
    super('ERR_KUBEPEERS_CONNECT', `connect to ${formatHostPort(address, port)} failed: ${errno}`, options);
    this.address = address;
    this.port = port;
    this.errno = errno;
  }
}

/** Why a handshake failed. `mismatch`: the other side is kubepeers but another job, run, namespace or index. */
export type HandshakeFailureReason = 'mismatch' | 'bad-proof' | 'protocol' | 'timeout' | 'closed' | 'busy';

/** A peer that answered but did not prove it is the expected member of this run. */
export class HandshakeError extends KubepeersError {
  readonly reason: HandshakeFailureReason;
  readonly address: string;
  readonly port: number;

  constructor(
    reason: HandshakeFailureReason,
    address: string,
    port: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      'ERR_KUBEPEERS_HANDSHAKE',
      `handshake with ${formatHostPort(address, port)}: ${reason}: ${detail}`,
      options,
    );
    this.reason = reason;
    this.address = address;
    this.port = port;
  }
}

/** A listener (the barrier responder, or the status server) could not listen: port in use, no permission. */
export class ListenError extends KubepeersError {
  readonly address: string;
  readonly port: number;
  /** Which listener: `the barrier responder` or `the status server`. */
  readonly listener: string;

  constructor(address: string, port: number, options?: { cause?: unknown; listener?: string }) {
    const errno = (options?.cause as NodeJS.ErrnoException | undefined)?.code ?? 'unknown error';
    const listener = options?.listener ?? 'the barrier responder';
    super(
      'ERR_KUBEPEERS_LISTEN',
      `cannot listen on ${formatHostPort(address, port)} for ${listener}: ${errno}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.address = address;
    this.port = port;
    this.listener = listener;
  }
}

/** (CLI) An integration file could not be written. */
export class OutputError extends KubepeersError {
  readonly path: string;

  constructor(path: string, options?: { cause?: unknown }) {
    const errno = (options?.cause as NodeJS.ErrnoException | undefined)?.code ?? 'unknown error';
    super('ERR_KUBEPEERS_OUTPUT', `cannot write ${path}: ${errno}`, options);
    this.path = path;
  }
}

/** What is known about one peer that had not passed the barrier. */
export interface MissingPeer {
  /** Completion index of the peer. */
  index: number;
  /** Absolute DNS name that was queried (with trailing dot). */
  fqdn: string;
  /**
   * Last failure seen for this peer:
   * - `not-seen`: its address never showed up in the Service's DNS answer (it may be running: then the detail says so);
   * - `nxdomain` / `nodata`: its name did not resolve;
   * - `dns-error`: the DNS servers failed (timeout, SERVFAIL, REFUSED);
   * - `connect-failed`: its address resolved but the TCP connection failed (refused, unreachable, timeout);
   * - `wrong-identity`: something answered at its address but is not this member of this run;
   * - `unconfirmed`: verified, but the barrier still waits on it: on the coordinator, a member that has not
   *   yet verified everyone it checks (see its own log); on a member, the coordinator has not released yet;
   * - `gave-up`: it stopped waiting (its own timeout or abort) and disconnected: a consequence of another
   *   peer's absence, listed after the others;
   * - `http-unhealthy`: (CLI `--probe-http`) its HTTP health endpoint did not answer 2xx.
   */
  reason:
    | 'not-seen'
    | 'nxdomain'
    | 'nodata'
    | 'dns-error'
    | 'connect-failed'
    | 'wrong-identity'
    | 'unconfirmed'
    | 'gave-up'
    | 'http-unhealthy';
  /** Human-readable detail: rcode, address, errno, mismatch. */
  detail: string;
}

/** The barrier did not complete within `timeoutMs`. `missing` lists every peer that had not passed. */
export class TimeoutError extends KubepeersError {
  readonly timeoutMs: number;
  readonly missing: readonly MissingPeer[];

  constructor(timeoutMs: number, missing: readonly MissingPeer[], hint?: string) {
    const list = missing
      .slice(0, 20)
      .map((m) => `  ${m.index} (${m.fqdn}): ${m.reason}: ${m.detail}`)
      .join('\n');
    const more = missing.length > 20 ? `\n  ... and ${missing.length - 20} more` : '';
    super(
      'ERR_KUBEPEERS_TIMEOUT',
      `barrier timed out after ${timeoutMs} ms; ${missing.length} peer(s) missing:\n${list}${more}` +
        (hint ? `\n${hint}` : ''),
    );
    this.timeoutMs = timeoutMs;
    this.missing = missing;
  }
}

/** The caller's `signal` aborted the wait. The signal's reason is on `cause`. */
export class AbortedError extends KubepeersError {
  constructor(options?: { cause?: unknown }) {
    super('ERR_KUBEPEERS_ABORTED', 'waiting for peers was aborted', options);
  }
}

/** `10.0.0.1:80`, `[fd00::1]:80`. */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
