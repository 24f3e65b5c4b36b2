import 'reflect-metadata';
import { runRetrieverService } from '@imagebind-llm/serving';
import { QdrantVectorStore } from './qdrant/qdrant.driver';

// RetrieverService on the embedded store or Qdrant; settings in
// libs/serving/src/retriever/host/retriever-env.schema.ts. Only this project may import @qdrant/*
// (Nx tag adapter:qdrant), so the Qdrant driver is handed to the shared host from here.
void runRetrieverService({ openQdrant: (settings) => new QdrantVectorStore(settings) });
