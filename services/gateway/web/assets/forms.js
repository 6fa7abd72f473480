// Accessible form fields and the mapping of API problems (422 `errors`, 409 codes) onto them.
import { ApiError } from './api.js';
import { h, uid } from './dom.js';

/**
 * A labelled field: {label, control (input/select/textarea), hint, name, className}
 * The control gets an id, aria-describedby for hint + error, and the error element is announced.
 */
export function field({ label, control, hint, name, className = '' }) {
  const id = control.id || uid(name || 'f');
  control.id = id;
  if (name) control.name = name;
  const hintEl = hint ? h('div', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errorEl = h('div', { class: 'field-error', id: `${id}-error`, dataset: { errorFor: control.name || '' } });
  control.setAttribute('aria-describedby', [hintEl ? hintEl.id : null, errorEl.id].filter(Boolean).join(' '));
  return h('div', { class: `field ${className}`.trim(), dataset: { field: control.name || '' } },
    h('label', { for: id, text: label }), control, hintEl, errorEl);
}

/** The form-level error box: a live region that stays empty until something goes wrong. */
export function formAlert() {
  return h('div', { class: 'alert alert-danger', role: 'alert', tabindex: '-1', hidden: true });
}

export function clearErrors(form, alertEl) {
  for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  if (alertEl) {
    alertEl.hidden = true;
    alertEl.textContent = '';
  }
}

function controlFor(form, name) {
  const sel = `[name="${CSS.escape(name)}"]`;
  return form.querySelector(`${sel}:checked`) || form.querySelector(sel);
}

export function setFieldError(form, name, message) {
  const errorEl = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
  if (!errorEl) return false;
  errorEl.textContent = message;
  const control = controlFor(form, name);
  if (control) control.setAttribute('aria-invalid', 'true');
  return true;
}

export function showAlert(alertEl, message) {
  alertEl.textContent = message;
  alertEl.hidden = false;
}

function humanize(message) {
  const text = String(message || 'invalid').replace(/^Value error, /, '');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Show an error from the API on the form: field errors next to their fields (names mapped through
 * `fieldMap` {apiField: inputName}), `codeMap` {code: [inputName, message]} for conflicts, anything else
 * in the alert. Focuses the first invalid control (or the alert).
 */
export function showApiError(form, alertEl, err, { fieldMap = {}, codeMap = {} } = {}) {
  clearErrors(form, alertEl);
  if (!(err instanceof ApiError)) {
    showAlert(alertEl, 'Something went wrong. Please try again.');
    return;
  }
  let first = null;
  const leftovers = [];
  const mark = (name, message) => {
    if (setFieldError(form, name, message)) {
      first = first || controlFor(form, name);
    } else {
      leftovers.push(message);
    }
  };
  if (codeMap[err.code]) {
    const [name, message] = codeMap[err.code];
    mark(name, message || err.message);
  }
  for (const item of err.fieldErrors) {
    const apiField = String(item.field || '').split('.').pop();
    const name = fieldMap[item.field] || fieldMap[apiField] || apiField;
    mark(name, humanize(item.message));
  }
  if (!codeMap[err.code] && !err.fieldErrors.length) leftovers.push(err.message);
  if (leftovers.length) showAlert(alertEl, leftovers.join(' '));
  if (first) first.focus();
  else if (leftovers.length) alertEl.focus?.();
}

/** Disable the submit button while fn runs; the button text changes to `busyText`. */
export async function busy(button, busyText, fn) {
  const text = button.textContent;
  button.disabled = true;
  button.textContent = busyText;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.textContent = text;
    button.removeAttribute('aria-busy');
  }
}
