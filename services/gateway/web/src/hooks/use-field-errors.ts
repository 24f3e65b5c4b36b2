import { useCallback, useState } from 'react';
import type { Modality } from '../lib/inputs';

/** The controls a message can be shown next to: one per modality, the instruction, the input list. */
export type FieldName = Modality | 'instruction' | 'inputs';

export type FieldErrors = Partial<Record<FieldName, string>>;

/** Sets (a message) or clears (undefined) the message next to one control. Stable across renders. */
export type SetFieldError = (field: FieldName, message: string | undefined) => void;

/** The messages next to the page's controls. */
export function useFieldErrors(): { readonly errors: FieldErrors; readonly setError: SetFieldError } {
  const [errors, setErrors] = useState<FieldErrors>({});
  const setError = useCallback<SetFieldError>((field, message) => {
    setErrors((e) => (e[field] === message ? e : { ...e, [field]: message }));
  }, []);
  return { errors, setError };
}
