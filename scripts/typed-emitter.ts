// The entry from which scripts/build.js has dts-bundle-generator copy typed-emitter's
// declarations into dist/typed-emitter.d.ts, so the published declarations import nothing from
// typed-emitter (a types-only package whose optional dependency, rxjs, would install 12 MB).
import type TypedEventEmitter from 'typed-emitter';

export type { EventMap } from 'typed-emitter';
export type { TypedEventEmitter as default };
