export * from './fusion';
export * from './progress';
export * from './generation';
