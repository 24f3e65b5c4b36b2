export * from './execution-providers';
export * from './single-flight';
export * from './session.port';
export * from './ort-session.driver';
export * from './generation/sampling';
export * from './generation/generation-engine';
export * from './model-repository';
export * from './pipeline/language-pipeline';
