/** Scrolls an element into view, smoothly unless the user asked for reduced motion. */
export function bringIntoView(id: string, block: ScrollLogicalPosition): void {
  const reduced = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  document.getElementById(id)?.scrollIntoView({ block, behavior: reduced ? 'auto' : 'smooth' });
}
