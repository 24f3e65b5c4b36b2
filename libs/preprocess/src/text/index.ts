export { BYTE_CHARS_IN_VOCAB_ORDER, BYTE_TO_CHAR, bytesToUnicode } from './byte-unicode';
export { cleanClipText, fixText } from './clean';
export {
  CLIP_CONTEXT_LENGTH,
  CLIP_EOT_ID,
  CLIP_EOT_TOKEN,
  CLIP_SOT_ID,
  CLIP_SOT_TOKEN,
  CLIP_VOCAB_SIZE,
  ClipTokenizer,
  DEFAULT_MAX_TEXT_CHARS,
  clipVocabPath,
  defaultClipTokenizer,
  tokenizeClipText,
  type ClipTokenizeOptions,
  type ClipTokens,
} from './clip-tokenizer';
export { htmlUnescape } from './html-unescape';
