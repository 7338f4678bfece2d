import { useId, type InputHTMLAttributes, type TextareaHTMLAttributes } from "react";

interface Common {
  label: string;
  hint?: string;
  /** The API's message about this field: shown under it, tied to it, and the field marked invalid. */
  error?: string | null;
}
type InputProps = Common & InputHTMLAttributes<HTMLInputElement> & { multiline?: false };
type AreaProps = Common & TextareaHTMLAttributes<HTMLTextAreaElement> & { multiline: true };

/** A labelled input (or textarea); the hint and any error are tied to it with aria-describedby. */
export function Field(props: InputProps | AreaProps) {
  const id = useId();
  const hintId = props.hint ? `${id}-hint` : undefined;
  const errorId = props.error ? `${id}-error` : undefined;
  const describedBy = [errorId, hintId].filter(Boolean).join(" ") || undefined;
  const invalid = props.error ? true : undefined;
  let control;
  if (props.multiline) {
    const { label: _label, hint: _hint, error: _error, multiline: _multiline, ...area } = props;
    control = <textarea id={id} aria-describedby={describedBy} aria-invalid={invalid} rows={3} {...area} />;
  } else {
    const { label: _label, hint: _hint, error: _error, multiline: _multiline, ...input } = props;
    control = <input id={id} aria-describedby={describedBy} aria-invalid={invalid} {...input} />;
  }
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      {control}
      {props.error && (
        <p id={errorId} className="field-error">
          {props.error}
        </p>
      )}
      {props.hint && (
        <p id={hintId} className="hint">
          {props.hint}
        </p>
      )}
    </div>
  );
}
