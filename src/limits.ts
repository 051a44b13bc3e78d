/**
 * The defaults and bounds of a poll, shared by the broker, the HTTP layer and the client: each
 * number has this one home.
 */

/** A poll's wait when it asks for none, in milliseconds. */
export const DEFAULT_WAIT = 25_000;

/** The most messages a poll returns when it asks for no `limit`. */
export const DEFAULT_LIMIT = 100;

/** The largest `limit` granted; larger ones are clamped. */
export const MAX_LIMIT = 1000;
