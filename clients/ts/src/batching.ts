// Client-side coalescing (docs/batching.md): the StateService saves, gets, deletes and
// transactions issued while another one is in flight on the connection go together, as one
// StateService.Batch call, when it returns. No timer: a lone call goes at once.

import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";

import {
  BatchOperationSchema,
  BatchRequestSchema,
  StateService,
  type BatchRequest,
  type BatchResponse,
  type BatchResult,
  type BatchStatus,
} from "./gen/statekeeper/v1/state_service_pb.js";
import { decodeErrorInfo } from "./errors.js";

/** Calls one Batch carries at most. */
export const MAX_BATCH_CALLS = 128;
/** Request bytes one Batch carries at most; a larger request always goes alone. */
export const MAX_BATCH_BYTES = 1 << 20;

/** The methods a Batch can carry (their BatchOperation case is the method's local name). */
const BATCHABLE = new Set(["save", "get", "delete", "transact"]);
const TOO_LARGE = "BATCH_RESPONSE_TOO_LARGE";

type Next = (request: UnaryRequest) => Promise<UnaryResponse>;

interface Queued {
  request: UnaryRequest;
  next: Next;
  size: number;
  sent: boolean;
  resolve: (response: UnaryResponse) => void;
  reject: (error: unknown) => void;
}

/** The error a failed batch operation stands for: what the same call alone fails with. */
function statusError(status: BatchStatus): ConnectError {
  const error = new ConnectError(status.message, status.code as Code);
  for (const detail of status.details) {
    const type = detail.typeUrl.slice(detail.typeUrl.lastIndexOf("/") + 1);
    error.details.push({ type, value: detail.value, debug: undefined });
  }
  return error;
}

function reason(status: BatchStatus): string {
  const info = status.details.find((d) => d.typeUrl.endsWith("/google.rpc.ErrorInfo"));
  return info ? decodeErrorInfo(info.value).reason : "";
}

/**
 * Coalesces the unary StateService calls of one connection. Each call keeps its own result,
 * its own error and its own deadline or abort signal (a call aborted while it waits is never
 * sent). A server without Batch (UNIMPLEMENTED) turns coalescing off for the connection.
 */
export class Coalescer {
  /** Batch calls sent, and the calls they carried. */
  batches = 0;
  batchedCalls = 0;
  private inFlight = false;
  private flushPending = false;
  /** How many callers the last call in flight answered, until the flush after it: while it
   * is more than one, their next calls wait for that flush to go together. */
  private answered = 0;
  private off = false;
  private queue: Queued[] = [];

  /** `send` makes the Batch call (through the connection's other interceptors). */
  constructor(private readonly send: (request: BatchRequest) => Promise<BatchResponse>) {}

  /** The interceptor to put first on the connection. */
  readonly interceptor: Interceptor = (next) => async (request) => {
    if (
      request.stream ||
      this.off ||
      request.service.typeName !== StateService.typeName ||
      !BATCHABLE.has(request.method.localName)
    ) {
      return next(request);
    }
    if (!this.inFlight && this.queue.length === 0 && this.answered <= 1) {
      this.inFlight = true;
      try {
        return await next(request);
      } finally {
        this.returned(1);
      }
    }
    const size = toBinary(request.method.input, request.message).byteLength;
    if (size > MAX_BATCH_BYTES) return next(request);
    return new Promise<UnaryResponse>((resolve, reject) => {
      const queued: Queued = { request, next: next as Next, size, sent: false, resolve, reject };
      this.queue.push(queued);
      if (!this.inFlight) this.scheduleFlush();
      request.signal.addEventListener("abort", () => {
        if (!queued.sent) this.queue = this.queue.filter((other) => other !== queued);
        reject(ConnectError.from(request.signal.reason));
      });
    }) as never;
  };

  /** The call in flight returned to `answered` callers: what waits (and what they issue next)
   * goes after one turn of the event loop. */
  private returned(answered: number): void {
    this.inFlight = false;
    this.answered = answered;
    if (answered > 1 || this.queue.length > 0) this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushPending) return;
    this.flushPending = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushPending = false;
    this.answered = 0;
    if (this.inFlight || this.queue.length === 0) return;
    const calls: Queued[] = [];
    let size = 0;
    while (this.queue.length > 0 && calls.length < MAX_BATCH_CALLS) {
      const next = this.queue[0];
      if (calls.length > 0 && size + next.size > MAX_BATCH_BYTES) break;
      this.queue.shift();
      next.sent = true;
      calls.push(next);
      size += next.size;
    }
    this.inFlight = true;
    void this.run(calls).finally(() => this.returned(calls.length));
  }

  private async run(calls: Queued[]): Promise<void> {
    if (calls.length === 1) return alone(calls[0]);
    const operations = calls.map((call) =>
      create(BatchOperationSchema, {
        kind: { case: call.request.method.localName, value: call.request.message } as never,
      }),
    );
    let response: BatchResponse;
    try {
      response = await this.send(create(BatchRequestSchema, { operations }));
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.Unimplemented) {
        this.off = true;
        await Promise.all(calls.map(alone));
        return;
      }
      for (const call of calls) call.reject(error);
      return;
    }
    this.batches += 1;
    this.batchedCalls += calls.length;
    const again: Promise<void>[] = [];
    calls.forEach((call, index) => {
      const result: BatchResult | undefined = response.results[index];
      const status = result?.status;
      if (result === undefined) {
        call.reject(new ConnectError("the batch returned too few results", Code.Internal));
      } else if (status !== undefined && status.code !== 0) {
        if (reason(status) === TOO_LARGE) again.push(alone(call));
        else call.reject(statusError(status));
      } else if (result.kind.case === undefined) {
        call.reject(new ConnectError("the batch returned a result without a response", Code.Internal));
      } else {
        call.resolve({
          stream: false,
          service: call.request.service,
          method: call.request.method,
          header: new Headers(),
          trailer: new Headers(),
          message: result.kind.value,
        } as UnaryResponse);
      }
    });
    await Promise.all(again);
  }
}

/** Sends one waiting call as its own RPC and answers its caller. */
async function alone(call: Queued): Promise<void> {
  try {
    call.resolve(await call.next(call.request));
  } catch (error) {
    call.reject(error);
  }
}
