import { useId, type InputHTMLAttributes, type TextareaHTMLAttributes } from "react";

interface Common {
  label: string;
  hint?: string;
}
type InputProps = Common & InputHTMLAttributes<HTMLInputElement> & { multiline?: false };
type AreaProps = Common & TextareaHTMLAttributes<HTMLTextAreaElement> & { multiline: true };

/** A labelled input (or textarea); the hint is tied to it with aria-describedby. */
export function Field(props: InputProps | AreaProps) {
  const id = useId();
  const hintId = props.hint ? `${id}-hint` : undefined;
  let control;
  if (props.multiline) {
    const { label: _label, hint: _hint, multiline: _multiline, ...area } = props;
    control = <textarea id={id} aria-describedby={hintId} rows={3} {...area} />;
  } else {
    const { label: _label, hint: _hint, multiline: _multiline, ...input } = props;
    control = <input id={id} aria-describedby={hintId} {...input} />;
  }
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      {control}
      {props.hint && (
        <p id={hintId} className="hint">
          {props.hint}
        </p>
      )}
    </div>
  );
}
