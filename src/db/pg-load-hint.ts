/**
 * pg decides when it loads whether it runs in a Cloudflare Worker: Node 20 has no `navigator`,
 * so pg constructs a fetch `Response` to find out, which loads Node's bundled undici (tens of ms
 * of every command that connects). While pg loads, a `navigator` that says Node answers it
 * cheaply; connect.ts removes it again right after, so no other library ever sees it.
 * Imported first by connect.ts: ES modules evaluate their imports in order.
 */
const placed = !('navigator' in globalThis);
if (placed) {
  Object.defineProperty(globalThis, 'navigator', { value: { userAgent: `Node.js/${process.versions.node}` }, configurable: true, writable: true });
}

export function removeNavigatorHint(): void {
  if (placed) delete (globalThis as { navigator?: unknown }).navigator;
}
