export * from './call-context';
export * from './handlers';
export * from './server';
export * from './client';
export * from './health-client';
export * from './nest-host';
export * from './grpc-logging';
export * from './service-host';
