export function Alert({ message, onRetry, title }: { message: string; onRetry?: () => void; title?: string }) {
  return (
    <div className="alert" role="alert">
      {title && <strong>{title}</strong>}
      <p>{message}</p>
      {onRetry && (
        <button type="button" className="btn small" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Notice({ children }: { children: React.ReactNode }) {
  return (
    <div className="notice" role="status">
      {children}
    </div>
  );
}
