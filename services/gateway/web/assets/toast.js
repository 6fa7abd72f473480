// Toasts: short notices in a polite live region; errors are announced assertively.
import { h } from './dom.js';

const DEFAULT_TIMEOUT = 7000;

/**
 * toast({title, body, kind: 'info'|'success'|'warning'|'danger', link: {href, text}, timeout})
 * body may be a string or a Node built with text nodes.
 */
export function toast({ title, body, kind = 'info', link, timeout = DEFAULT_TIMEOUT }) {
  const region = document.getElementById('toasts');
  if (!region) return null;
  const bodyEl = body === undefined || body === null ? null : h('p', {}, body);
  const el = h('div', { class: `toast ${kind}`, role: kind === 'danger' ? 'alert' : 'status' },
    h('div', { class: 'content' },
      h('strong', { text: title }),
      bodyEl,
      link ? h('p', {}, h('a', { href: link.href, text: link.text })) : null),
    h('button', { type: 'button', class: 'close', 'aria-label': 'Dismiss notification', text: '×' }));
  let timer = null;
  const dismiss = () => { clearTimeout(timer); el.remove(); };
  const arm = () => { if (timeout) timer = setTimeout(dismiss, timeout); };
  el.querySelector('.close').addEventListener('click', dismiss);
  el.addEventListener('mouseenter', () => clearTimeout(timer));
  el.addEventListener('mouseleave', arm);
  el.addEventListener('focusin', () => clearTimeout(timer));
  el.querySelector('a')?.addEventListener('click', dismiss);
  region.append(el);
  while (region.children.length > 4) region.firstElementChild.remove();
  arm();
  return { el, dismiss, setBody(node) { if (bodyEl) bodyEl.replaceChildren(node); } };
}
