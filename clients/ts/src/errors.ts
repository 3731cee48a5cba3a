// Typed errors: a failed call becomes a StatekeeperError subclass chosen by its gRPC code, with
// the stable reason of its google.rpc.ErrorInfo detail and its google.rpc.BadRequest field
// violations.

import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader } from "@bufbuild/protobuf/wire";

/** The google.rpc.ErrorInfo domain of every statekeeper error. */
export const ERROR_DOMAIN = "statekeeper.dev";

/** Stable error reasons of the StateService (other services add their own). */
export const Reason = {
  INVALID_KEY: "INVALID_KEY",
  INVALID_PATTERN: "INVALID_PATTERN",
  INVALID_VALUE: "INVALID_VALUE",
  VALUE_TOO_LARGE: "VALUE_TOO_LARGE",
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  KEY_NOT_FOUND: "KEY_NOT_FOUND",
  NOT_FOUND: "NOT_FOUND",
  ALREADY_EXISTS: "ALREADY_EXISTS",
  REVISION_CONFLICT: "REVISION_CONFLICT",
  FAILED_PRECONDITION: "FAILED_PRECONDITION",
  HISTORY_COMPACTED: "HISTORY_COMPACTED",
  RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
  UNAVAILABLE: "UNAVAILABLE",
  INTERNAL: "INTERNAL",
} as const;

/** One problem with one request field. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** The base class of every statekeeper error. */
export class StatekeeperError extends Error {
  /** The gRPC status code. */
  readonly code: Code;
  /** The stable machine-readable reason (ErrorInfo.reason), e.g. "REVISION_CONFLICT". */
  readonly reason: string;
  /** The ErrorInfo metadata. */
  readonly metadata: Record<string, string>;
  /** The field violations of an INVALID_ARGUMENT error. */
  readonly violations: FieldViolation[];

  constructor(
    message: string,
    code: Code,
    reason: string,
    metadata: Record<string, string> = {},
    violations: FieldViolation[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
    this.metadata = metadata;
    this.violations = violations;
  }

  /** The gRPC code spelled as in the gRPC specification, e.g. "NOT_FOUND". */
  get codeName(): string {
    return Code[this.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  }
}

/** The request is malformed (INVALID_ARGUMENT). */
export class InvalidArgumentError extends StatekeeperError {}
/** The key or record does not exist (NOT_FOUND). */
export class NotFoundError extends StatekeeperError {}
/** A create found the record already there (ALREADY_EXISTS). */
export class AlreadyExistsError extends StatekeeperError {}
/** A compare-and-set found another revision than expected (ABORTED): read again and retry. */
export class ConflictError extends StatekeeperError {}
/** The record's state does not allow the operation (FAILED_PRECONDITION). */
export class FailedPreconditionError extends StatekeeperError {}
/** A size or count limit was reached (RESOURCE_EXHAUSTED). */
export class ResourceExhaustedError extends StatekeeperError {}
/** The server cannot be reached right now; retrying may succeed (UNAVAILABLE). */
export class UnavailableError extends StatekeeperError {}
/** The call carries no valid credentials (UNAUTHENTICATED). */
export class UnauthenticatedError extends StatekeeperError {}
/** The credentials do not allow the call (PERMISSION_DENIED). */
export class PermissionDeniedError extends StatekeeperError {}
/** The server failed unexpectedly (INTERNAL, UNKNOWN and other codes). */
export class InternalError extends StatekeeperError {}
/** A watch asked for history that is gone: read the keys again, then watch from compactRevision. */
export class HistoryCompactedError extends StatekeeperError {
  /** The oldest revision that can still be watched. */
  get compactRevision(): bigint {
    return BigInt(this.metadata["compact_revision"] ?? "0");
  }
}

const CLASS_BY_CODE: Partial<Record<Code, typeof StatekeeperError>> = {
  [Code.InvalidArgument]: InvalidArgumentError,
  [Code.NotFound]: NotFoundError,
  [Code.AlreadyExists]: AlreadyExistsError,
  [Code.Aborted]: ConflictError,
  [Code.FailedPrecondition]: FailedPreconditionError,
  [Code.OutOfRange]: HistoryCompactedError,
  [Code.ResourceExhausted]: ResourceExhaustedError,
  [Code.Unavailable]: UnavailableError,
  [Code.Unauthenticated]: UnauthenticatedError,
  [Code.PermissionDenied]: PermissionDeniedError,
};

const ERROR_INFO = "google.rpc.ErrorInfo";
const BAD_REQUEST = "google.rpc.BadRequest";

/** Decodes a google.rpc.ErrorInfo (reason = 1, domain = 2, metadata = 3). */
export function decodeErrorInfo(bytes: Uint8Array): {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
} {
  const reader = new BinaryReader(bytes);
  const info = { reason: "", domain: "", metadata: {} as Record<string, string> };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) info.reason = reader.string();
    else if (field === 2) info.domain = reader.string();
    else if (field === 3) {
      const [key, value] = decodePair(reader.bytes());
      info.metadata[key] = value;
    } else reader.skip(wireType);
  }
  return info;
}

/** Decodes a google.rpc.BadRequest (field_violations = 1 of {field = 1, description = 2}). */
export function decodeBadRequest(bytes: Uint8Array): FieldViolation[] {
  const reader = new BinaryReader(bytes);
  const violations: FieldViolation[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) {
      const [name, description] = decodePair(reader.bytes());
      violations.push({ field: name, description });
    } else reader.skip(wireType);
  }
  return violations;
}

/** Reads the two string fields 1 and 2 of a small message (a map entry, a violation). */
function decodePair(bytes: Uint8Array): [string, string] {
  const reader = new BinaryReader(bytes);
  let first = "";
  let second = "";
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) first = reader.string();
    else if (field === 2) second = reader.string();
    else reader.skip(wireType);
  }
  return [first, second];
}

/**
 * Turns a failed call into the typed error it stands for. A StatekeeperError is returned as it
 * is; anything that is not a ConnectError (e.g. an AbortError) is returned unchanged.
 */
export function fromError(error: unknown): unknown {
  if (error instanceof StatekeeperError) return error;
  if (!(error instanceof ConnectError)) return error;
  let reason = "";
  let metadata: Record<string, string> = {};
  let violations: FieldViolation[] = [];
  for (const detail of error.details) {
    if (!("value" in detail) || !(detail.value instanceof Uint8Array)) continue;
    const type = "type" in detail ? String(detail.type) : "";
    if (type === ERROR_INFO) {
      const info = decodeErrorInfo(detail.value);
      reason = info.reason;
      metadata = info.metadata;
    } else if (type === BAD_REQUEST) {
      violations = decodeBadRequest(detail.value);
    }
  }
  const Class = CLASS_BY_CODE[error.code] ?? InternalError;
  return new Class(error.rawMessage, error.code, reason, metadata, violations, { cause: error });
}
