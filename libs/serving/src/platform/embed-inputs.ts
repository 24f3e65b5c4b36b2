import { fuseEmbeddings } from '@imagebind-llm/domain';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { readFloat32Tensor } from '@imagebind-llm/grpc-kit';
import { commonV1, type encoderV1 } from '@imagebind-llm/proto';
import type { HopContext, PlatformBackends, RoutedModality } from './backends.port';

const { Modality } = commonV1;

/** The encoder that serves each contract modality (MODEL_SPEC §1.1). */
export const ROUTE: ReadonlyMap<commonV1.Modality, RoutedModality> = new Map([
  [Modality.MODALITY_IMAGE, 'image'],
  [Modality.MODALITY_VIDEO, 'video'],
  [Modality.MODALITY_AUDIO, 'audio'],
  [Modality.MODALITY_TEXT, 'text'],
  [Modality.MODALITY_POINT_CLOUD, 'point'],
]);

/** The contract modality of each encoder modality: ROUTE read backwards. */
export const PROTO_MODALITY: Readonly<Record<RoutedModality, commonV1.Modality>> = Object.fromEntries(
  [...ROUTE].map(([proto, modality]) => [modality, proto]),
) as Record<RoutedModality, commonV1.Modality>;

/** One weighted input of a request: something for its encoder, or an embedding computed before. */
export interface PlatformInput {
  readonly modality: commonV1.Modality;
  /** Default 1. */
  readonly weight?: number;
  readonly source:
    | { readonly kind: 'encode'; readonly input: encoderV1.EncoderInput }
    /** Enters the fusion as an encoder's output would; a fused one is q itself. */
    | { readonly kind: 'embedding'; readonly embedding: Float32Array; readonly fused: boolean };
}

export interface EmbeddedInput {
  readonly modality: commonV1.Modality;
  readonly embedding: Float32Array;
  /** The tensor the encoder saw, when asked for (`includePreprocessed`) and an encoder ran. */
  readonly preprocessed?: { readonly data: Float32Array; readonly shape: readonly number[] };
}

export interface EmbeddedInputs {
  readonly perInput: readonly EmbeddedInput[];
  readonly fused: Float32Array;
}

/**
 * Encodes every input on its modality's encoder (one call per modality, inputs in request order)
 * and fuses them (MODEL_SPEC §1.2): the embedding step of ARCHITECTURE §2, the same over gRPC
 * clients (the gateway) and in-process drivers (standalone serving, `ibllm embed`/`generate`).
 */
export async function embedInputs(
  backends: Pick<PlatformBackends, 'encoder'>,
  inputs: readonly PlatformInput[],
  ctx: HopContext,
  options: { readonly includePreprocessed?: boolean } = {},
): Promise<EmbeddedInputs> {
  const groups = new Map<RoutedModality, { index: number; input: encoderV1.EncoderInput }[]>();
  const embedded = new Array<EmbeddedInput>(inputs.length);
  let fusedQuery: Float32Array | undefined;
  inputs.forEach((input, index) => {
    const source = input.source;
    if (source.kind === 'embedding') {
      embedded[index] = { modality: input.modality, embedding: source.embedding };
      if (source.fused) fusedQuery = source.embedding;
      return;
    }
    const route = ROUTE.get(input.modality)!;
    const list = groups.get(route) ?? [];
    list.push({ index, input: source.input });
    groups.set(route, list);
  });
  await Promise.all(
    [...groups].map(async ([route, items]) => {
      const encoder = backends.encoder(route);
      if (encoder === undefined) {
        // What this deployment serves, not what the request got wrong: 501, as for batches
        // without Redis.
        throw new DomainError(
          ErrorCode.NotImplemented,
          `inputs[${items[0]!.index}]: this deployment runs no ${route} encoder; send another ` +
            'modality or ask the operator to deploy it',
          { field: `inputs[${items[0]!.index}].modality` },
        );
      }
      const response = await encoder
        .encode(
          {
            modality: inputs[items[0]!.index]!.modality,
            inputs: items.map((i) => i.input),
            includeUnnormalized: false,
            includePreprocessed: options.includePreprocessed === true,
          },
          ctx,
        )
        .catch((error: unknown) => {
          throw toRequestIndices(
            error,
            items.map((i) => i.index),
          );
        });
      if (response.embeddings.length !== items.length) {
        throw new DomainError(
          ErrorCode.Internal,
          `the ${route} encoder returned ${response.embeddings.length} embeddings for ${items.length} inputs`,
        );
      }
      items.forEach((item, j) => {
        const out = response.embeddings[j]!;
        const preprocessed =
          out.preprocessed === undefined ? undefined : readFloat32Tensor(out.preprocessed, 'preprocessed');
        embedded[item.index] = {
          modality: inputs[item.index]!.modality,
          embedding: readFloat32Tensor(out.embedding, 'embedding').data,
          ...(preprocessed === undefined ? {} : { preprocessed }),
        };
      });
    }),
  );
  return {
    perInput: embedded,
    fused:
      fusedQuery ??
      fuseEmbeddings(
        embedded.map((e) => e.embedding),
        inputs.map((i) => i.weight ?? 1),
      ),
  };
}

const ENCODER_INPUT_PATH = /^inputs\[(\d+)\]/;

/**
 * An encoder numbers the inputs of its own batch; the caller numbered the whole request, where
 * other modalities sit in between. Renumbers `inputs[j]` in the message and field to the request's
 * index, so "inputs[1]: unsupported image format" points at what the caller sent as inputs[1].
 */
export function toRequestIndices(error: unknown, requestIndexOf: readonly number[]): unknown {
  if (!(error instanceof DomainError)) return error;
  const rename = (text: string): string =>
    text.replace(ENCODER_INPUT_PATH, (whole, j: string) => {
      const index = requestIndexOf[Number(j)];
      return index === undefined ? whole : `inputs[${index}]`;
    });
  const field = error.details.field;
  const details = typeof field === 'string' ? { ...error.details, field: rename(field) } : error.details;
  return new DomainError(error.code, rename(error.message), details, { cause: error });
}
