// Pages without a route of their own.
import { setTitle } from './badge.js';
import { h, replace } from './dom.js';

export function mountNotFound(ctx) {
  setTitle('Page not found');
  replace(ctx.root, h('div', { class: 'card' }, h('div', { class: 'card-body empty' },
    h('h1', { text: 'Page not found' }),
    h('p', { text: 'There is nothing at this address.' }),
    h('a', { class: 'btn btn-primary', href: '/', text: 'Back to all listings' }))));
}
