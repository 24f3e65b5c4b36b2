export * from './execution-providers';
export * from './single-flight';
