/**
 * A message next to the control it is about. The live region is always in the page (empty when
 * there is nothing to say), so assistive technology announces a message the moment it appears.
 */
export function FieldError(props: { readonly id: string; readonly message: string | undefined }) {
  return (
    <p className="field-error" id={props.id} role="alert">
      {props.message ?? ''}
    </p>
  );
}
