// The StatekeeperClient: a gRPC connection (plaintext or TLS) and the StateService operations.

import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, type Duration } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { setTimeout as sleep } from "node:timers/promises";

import { ValueEncoding, type KeyValue } from "./gen/statekeeper/v1/common_pb.js";
import {
  EventType,
  RangeRequestSchema,
  StateService,
  type Event,
  WatchRequestSchema,
} from "./gen/statekeeper/v1/state_service_pb.js";
import { Coalescer } from "./batching.js";
import { fromError, HistoryCompactedError, Reason, StatekeeperError } from "./errors.js";
import { fromValue, toValue, type Document } from "./values.js";

/** The conditions of a range read (StateService.Range, docs/range.md); all are optional. */
export interface RangeOptions {
  /** The least key (inclusive). */
  startKey?: string;
  /** The key at which the range ends (exclusive). */
  endKey?: string;
  /** Only keys starting with this literal text. */
  prefix?: string;
  /** Only keys matching this glob pattern. */
  pattern?: string;
  /** Descending key order. */
  reverse?: boolean;
  /** Entries without values. */
  keysOnly?: boolean;
  /** Entries per page (0: the server's default). */
  pageSize?: number;
  /** Read the store as it was at this revision (0: now). */
  revision?: bigint | number;
}

/** TLS settings: PEM contents (not paths) of the CA, and of a client certificate for mTLS. */
export interface TlsOptions {
  /** CA certificate(s) that sign the server certificate; the system roots when absent. */
  ca?: string | Buffer;
  /** Client certificate for mutual TLS. */
  cert?: string | Buffer;
  /** Client private key for mutual TLS. */
  key?: string | Buffer;
  /** The name to check in the server certificate, when it differs from the host. */
  servername?: string;
}

/** How to reach the server. */
export interface ConnectOptions {
  /** TLS settings, or true for TLS with the system roots; plaintext when absent or false. */
  tls?: TlsOptions | boolean;
  /** A bearer token, sent as "authorization: Bearer <token>" with every call. */
  token?: string;
  /** The namespace of the token to work in, sent as "x-statekeeper-namespace". */
  namespace?: string;
  /** Interceptors run on every call. */
  interceptors?: Interceptor[];
  /** Default deadline of unary calls, in milliseconds. */
  timeoutMs?: number;
  /**
   * The largest message the client accepts, in bytes (DEFAULT_MAX_RECEIVE_MESSAGE_BYTES when
   * absent); keep it at least the server's --max-message-bytes, which bounds every response.
   */
  maxReceiveMessageBytes?: number;
  /**
   * Coalesce the saves, gets, deletes and transactions issued while another is in flight into
   * one StateService.Batch call (true by default; docs/batching.md). Each call keeps its own
   * result, error and deadline.
   */
  batching?: boolean;
}

/** The default receive limit: twice the server's default --max-message-bytes (4 MiB). */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 8 * 1024 * 1024;

/** A stored document with its revision metadata. */
export interface Entry {
  key: string;
  value: Document;
  createRevision: bigint;
  modRevision: bigint;
  version: bigint;
  /** When the key expires; undefined when it never does. */
  expireTime?: Date;
}

/** Conditions and time-to-live of a write. */
export interface WriteOptions {
  /** Write only if the key's mod_revision is this (0: the key must not exist). */
  ifRevision?: bigint | number;
  /** Expire the key after this many seconds. */
  ttlSeconds?: number;
}

/** What happened to a key. */
export type ChangeType = "put" | "delete" | "expire";

/** One change of one key delivered by watch(). */
export interface Change {
  type: ChangeType;
  key: string;
  revision: bigint;
  /** The new document after a put; null after a delete or expiry. */
  value: Document;
  /** The document before the change, when prevValue was asked for and the key existed. */
  prevValue: Document;
}

/** Options of watch(). */
export interface WatchOptions {
  /** The first revision to deliver; 0 (the default) means changes after the current one. */
  startRevision?: bigint | number;
  /** Ask for the previous document of each change. */
  prevValue?: boolean;
  /** Called with the store revision once the watch is registered (again after reconnects). */
  onStarted?: (revision: bigint) => void;
  /** Ends the watch. */
  signal?: AbortSignal;
  /** The longest pause between reconnection attempts, in milliseconds (2000 by default). */
  maxBackoffMs?: number;
}

function toDuration(seconds: number | undefined): Duration | undefined {
  if (seconds === undefined || seconds <= 0) return undefined;
  const whole = Math.floor(seconds);
  return {
    $typeName: "google.protobuf.Duration",
    seconds: BigInt(whole),
    nanos: Math.round((seconds - whole) * 1e9),
  };
}

function optionalRevision(revision: bigint | number | undefined): bigint | undefined {
  return revision === undefined ? undefined : BigInt(revision);
}

function entryFrom(kv: KeyValue | undefined): Entry {
  if (kv === undefined) throw new TypeError("the server sent no entry");
  return {
    key: kv.key,
    value: fromValue(kv.value),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    expireTime: kv.expireTime ? timestampDate(kv.expireTime) : undefined,
  };
}

const CHANGE_TYPES: Partial<Record<EventType, ChangeType>> = {
  [EventType.PUT]: "put",
  [EventType.DELETE]: "delete",
  [EventType.EXPIRE]: "expire",
};

function changeFrom(event: Event): Change {
  return {
    type: CHANGE_TYPES[event.type] ?? "put",
    key: event.kv?.key ?? "",
    revision: event.kv?.modRevision ?? 0n,
    value: event.type === EventType.PUT ? fromValue(event.kv?.value) : null,
    prevValue: event.prevKv ? fromValue(event.prevKv.value) : null,
  };
}

/** Whether a broken watch stream should reconnect. */
function retryable(error: unknown): boolean {
  return (
    error instanceof StatekeeperError &&
    (error.code === Code.Unavailable || error.code === Code.Unknown ||
      (error.code === Code.Internal && error.reason === ""))
  );
}

/** A connection to a statekeeper server with the StateService operations. */
export class StatekeeperClient {
  /** The generated StateService client, for what this class does not wrap. */
  readonly state: Client<typeof StateService>;
  private readonly sessions: Http2SessionManager;
  private readonly transport: ReturnType<typeof createGrpcTransport>;
  private readonly timeoutMs?: number;
  private readonly coalescer?: Coalescer;

  /** Connects lazily to `address` ("host:port"); close() releases the connection. */
  constructor(address: string, options: ConnectOptions = {}) {
    const secure = options.tls !== undefined && options.tls !== false;
    const baseUrl = `${secure ? "https" : "http"}://${address}`;
    const tls = typeof options.tls === "object" ? options.tls : {};
    this.sessions = new Http2SessionManager(baseUrl, undefined, secure ? { ...tls } : {});
    const headers: [string, string][] = [];
    if (options.token) headers.push(["authorization", `Bearer ${options.token}`]);
    if (options.namespace) headers.push(["x-statekeeper-namespace", options.namespace]);
    const addHeaders: Interceptor = (next) => (request) => {
      for (const [name, value] of headers) request.header.set(name, value);
      return next(request);
    };
    this.timeoutMs = options.timeoutMs;
    // First, so that a Batch passes the other interceptors as the calls it carries would.
    this.coalescer =
      options.batching === false
        ? undefined
        : new Coalescer((request) => this.state.batch(request, { timeoutMs: this.timeoutMs }));
    this.transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.sessions,
      readMaxBytes: options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
      interceptors: [
        ...(this.coalescer ? [this.coalescer.interceptor] : []),
        ...(headers.length > 0 ? [addHeaders] : []),
        ...(options.interceptors ?? []),
      ],
    });
    this.state = createClient(StateService, this.transport);
  }

  /** A generated client of another service on this connection, e.g. client.service(WorkflowService). */
  service<T extends DescService>(service: T): Client<T> {
    return createClient(service, this.transport);
  }

  /** How many Batch calls coalescing sent, and how many calls they carried. */
  batchStats(): { batches: number; calls: number } {
    return { batches: this.coalescer?.batches ?? 0, calls: this.coalescer?.batchedCalls ?? 0 };
  }

  /** Closes the connection (and ends running watches). */
  close(): void {
    this.sessions.abort();
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw fromError(error);
    }
  }

  /** Creates or replaces the document under `key`; returns its new mod_revision. */
  async save(key: string, value: Document, options: WriteOptions = {}): Promise<bigint> {
    const response = await this.call(() =>
      this.state.save(
        {
          key,
          value: toValue(value),
          expectedRevision: optionalRevision(options.ifRevision),
          ttl: toDuration(options.ttlSeconds),
        },
        { timeoutMs: this.timeoutMs },
      ),
    );
    return response.kv?.modRevision ?? 0n;
  }

  /** The entry under `key`; a missing key throws NotFoundError (reason KEY_NOT_FOUND). */
  async get(key: string): Promise<Entry> {
    const response = await this.call(() =>
      this.state.get({ key, valueEncoding: ValueEncoding.JSON }, { timeoutMs: this.timeoutMs }),
    );
    return entryFrom(response.kv);
  }

  /** Merges `patch` into the stored document (RFC 7396) and returns the merged entry. */
  async update(key: string, patch: { [key: string]: Document }, options: WriteOptions = {}): Promise<Entry> {
    const response = await this.call(() =>
      this.state.update(
        {
          key,
          patch: toValue(patch),
          expectedRevision: optionalRevision(options.ifRevision),
          ttl: toDuration(options.ttlSeconds),
          valueEncoding: ValueEncoding.JSON,
        },
        { timeoutMs: this.timeoutMs },
      ),
    );
    return entryFrom(response.kv);
  }

  /** Deletes `key`; true when it existed. */
  async delete(key: string, options: WriteOptions = {}): Promise<boolean> {
    const response = await this.call(() =>
      this.state.delete(
        { key, expectedRevision: optionalRevision(options.ifRevision) },
        { timeoutMs: this.timeoutMs },
      ),
    );
    return response.deleted;
  }

  /** One page of the keys matching the glob `pattern`; `nextPageToken` is "" on the last page. */
  async listPage(
    pattern: string,
    pageSize = 0,
    pageToken = "",
  ): Promise<{ keys: string[]; nextPageToken: string }> {
    const response = await this.call(() =>
      this.state.listKeys({ pattern, pageSize, pageToken }, { timeoutMs: this.timeoutMs }),
    );
    return { keys: response.keys, nextPageToken: response.nextPageToken };
  }

  /** Every key matching the glob `pattern`, in key order, fetched page by page. */
  async *keys(pattern = "*", pageSize = 0): AsyncGenerator<string> {
    let token = "";
    do {
      const page = await this.listPage(pattern, pageSize, token);
      yield* page.keys;
      token = page.nextPageToken;
    } while (token !== "");
  }

  /**
   * The entries of a StateService.Range request (docs/range.md: key range, prefix, glob,
   * reverse, keys only, revision), in its order, fetched page by page; the page token is
   * managed here.
   */
  async *range(options: RangeOptions = {}): AsyncGenerator<Entry> {
    let pageToken = "";
    do {
      const request: MessageInitShape<typeof RangeRequestSchema> = {
        ...options,
        revision: BigInt(options.revision ?? 0),
        pageToken,
        valueEncoding: ValueEncoding.JSON,
      };
      const response = await this.call(() =>
        this.state.range(request, { timeoutMs: this.timeoutMs }),
      );
      for (const kv of response.kvs) yield entryFrom(kv);
      pageToken = response.nextPageToken;
    } while (pageToken !== "");
  }

  /**
   * Every change of the keys matching `pattern`, in revision order.
   *
   * When the stream breaks (server restart, network failure, or the server ending the watch
   * with a reason such as "server_shutdown: ...") the watch reconnects with a growing pause and
   * resumes after the last delivered revision, so no change is lost or repeated. A revision the
   * server sends in fragments (too large for one message) is delivered once all of it has
   * arrived; a part received before a break is dropped and read again. It ends when `signal` aborts, or throws HistoryCompactedError when the server no
   * longer has the history to resume from (read the keys again, then watch from
   * `error.compactRevision`), or another StatekeeperError for a non-transient failure.
   */
  async *watch(pattern = "*", options: WatchOptions = {}): AsyncGenerator<Change> {
    let next = BigInt(options.startRevision ?? 0);
    const maxBackoff = options.maxBackoffMs ?? 2000;
    let delay = 50;
    const signal = options.signal;
    while (!signal?.aborted) {
      const request: MessageInitShape<typeof WatchRequestSchema> = {
        pattern,
        startRevision: next,
        prevKv: options.prevValue ?? false,
        valueEncoding: ValueEncoding.JSON,
      };
      let partial: Event[] = []; // the fragments of a revision whose last part is to come
      try {
        for await (const message of this.state.watch(request, { signal })) {
          delay = 50;
          if (message.created) {
            if (next === 0n) next = message.revision + 1n;
            options.onStarted?.(message.revision);
            continue;
          }
          if (message.canceled) {
            if (message.compactRevision !== 0n) {
              throw new HistoryCompactedError(
                message.cancelReason,
                Code.OutOfRange,
                Reason.HISTORY_COMPACTED,
                { compact_revision: message.compactRevision.toString() },
              );
            }
            break;
          }
          if (message.fragment) {
            partial.push(...message.events);
            continue;
          }
          const events = partial.length > 0 ? [...partial, ...message.events] : message.events;
          partial = [];
          for (const event of events) {
            const change = changeFrom(event);
            yield change;
            next = change.revision + 1n;
          }
          if (message.progressNotify && message.revision + 1n > next) {
            next = message.revision + 1n;
          }
        }
      } catch (raw) {
        if (signal?.aborted) return;
        const error = fromError(raw);
        if (!retryable(error)) throw error;
      }
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        return;
      }
      delay = Math.min(delay * 2, maxBackoff);
    }
  }
}

/** Connects to the statekeeper server at `address` ("host:port"). */
export function connect(address: string, options: ConnectOptions = {}): StatekeeperClient {
  return new StatekeeperClient(address, options);
}


