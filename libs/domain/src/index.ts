export * from './fusion';
export * from './progress';
