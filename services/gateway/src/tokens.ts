/** Nest injection tokens of the gateway's process-wide objects. */
export const GATEWAY_ENV = Symbol.for('imagebind.gateway.env');
export const LOGGER = Symbol.for('imagebind.gateway.logger');
export const METRICS = Symbol.for('imagebind.gateway.metrics');
export const BACKENDS = Symbol.for('imagebind.gateway.backends');
export const ACCESS = Symbol.for('imagebind.gateway.access');
export const BATCH = Symbol.for('imagebind.gateway.batch');
export const PLAYGROUND_SITE = Symbol.for('imagebind.gateway.playground-site');
