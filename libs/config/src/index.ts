export * from './env-schema';
export * from './boot';
export { z } from 'zod';
export * from './service-env';
