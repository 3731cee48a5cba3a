// The statekeeper TypeScript client: connect(), documents, typed errors and resuming watches.
// Generated messages and service descriptors of every service are exported from ./gen.

export {
  connect,
  DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  StatekeeperClient,
  type Change,
  type ChangeType,
  type ConnectOptions,
  type Entry,
  type RangeOptions,
  type TlsOptions,
  type WatchOptions,
  type WriteOptions,
} from "./client.js";
export * from "./errors.js";
export {
  documentFromJson,
  documentToJson,
  fromValue,
  toValue,
  validateDocument,
  BYTES_MEMBER,
  MAX_DEPTH,
  type Document,
} from "./values.js";
