import { useId, type InputHTMLAttributes } from "react";

type Props = InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: string; multiline?: boolean };

/** A labelled input; the hint is tied to it with aria-describedby. */
export function Field({ label, hint, multiline, ...input }: Props) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {multiline ? (
        <textarea
          id={id}
          aria-describedby={hintId}
          rows={3}
          value={input.value as string}
          onChange={input.onChange as unknown as React.ChangeEventHandler<HTMLTextAreaElement>}
          maxLength={input.maxLength}
          name={input.name}
        />
      ) : (
        <input id={id} aria-describedby={hintId} {...input} />
      )}
      {hint && (
        <p id={hintId} className="hint">
          {hint}
        </p>
      )}
    </div>
  );
}
