// Log in and sign up.
import { ApiError, isLoggedIn, login, register } from './api.js';
import { setTitle } from './badge.js';
import { h, replace } from './dom.js';
import { busy, clearErrors, field, formAlert, showApiError, showAlert } from './forms.js';

function nextPath(ctx) {
  const next = ctx.url.searchParams.get('next') || '/';
  // Only local paths: never send someone to another site after logging in.
  return /^\/(?!\/)/.test(next) && !next.startsWith('/login') && !next.startsWith('/signup') ? next : '/';
}

function alreadyIn(ctx) {
  if (!isLoggedIn()) return false;
  ctx.navigate(nextPath(ctx), { replace: true });
  return true;
}

export function mountLogin(ctx) {
  if (alreadyIn(ctx)) return null;
  setTitle('Log in');
  const username = h('input', { class: 'input', type: 'text', autocomplete: 'username', required: true, maxlength: '254', autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { class: 'input', type: 'password', autocomplete: 'current-password', required: true, maxlength: '256' });
  const submit = h('button', { class: 'btn btn-primary btn-block', type: 'submit', text: 'Log in' });
  const alert = formAlert();
  const form = h('form', { novalidate: true, 'aria-labelledby': 'login-title' },
    alert,
    field({ label: 'Username', control: username, name: 'username' }),
    field({ label: 'Password', control: password, name: 'password' }),
    submit);
  const notice = ctx.url.searchParams.get('expired')
    ? h('div', { class: 'alert alert-warning', role: 'status', text: 'Your session has expired. Please log in again.' })
    : null;
  const signupHref = `/signup${ctx.url.search.replace(/[?&]expired=1/, '')}`;
  replace(ctx.root, h('div', { class: 'card auth-card' }, h('div', { class: 'card-body' },
    h('h1', { id: 'login-title', text: 'Log in' }),
    notice,
    form,
    h('p', { class: 'muted small' }, 'New here? ', h('a', { href: signupHref, text: 'Create an account' })))));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, alert);
    if (!username.value.trim() || !password.value) {
      showAlert(alert, 'Enter your username and password.');
      (username.value.trim() ? password : username).focus();
      return;
    }
    await busy(submit, 'Logging in…', async () => {
      try {
        await login(username.value.trim(), password.value);
        ctx.navigate(nextPath(ctx), { replace: true });
      } catch (err) {
        if (!ctx.alive) return;
        if (err.status === 401) {
          showAlert(alert, 'Wrong username or password.');
          password.value = '';
          password.focus();
        } else if (err.status === 429) {
          showAlert(alert, 'Too many failed attempts. Wait a minute and try again.');
        } else {
          showApiError(form, alert, err);
        }
      }
    });
  });
  username.focus();
  return null;
}

export function mountSignup(ctx) {
  if (alreadyIn(ctx)) return null;
  setTitle('Sign up');
  const username = h('input', { class: 'input', type: 'text', autocomplete: 'username', required: true, minlength: '3', maxlength: '32', pattern: '[A-Za-z0-9._\\-]{3,32}', autocapitalize: 'none', spellcheck: 'false' });
  const email = h('input', { class: 'input', type: 'email', autocomplete: 'email', required: true, maxlength: '254' });
  const password = h('input', { class: 'input', type: 'password', autocomplete: 'new-password', required: true, minlength: '8', maxlength: '256' });
  const confirm = h('input', { class: 'input', type: 'password', autocomplete: 'new-password', required: true, maxlength: '256' });
  const submit = h('button', { class: 'btn btn-primary btn-block', type: 'submit', text: 'Create account' });
  const alert = formAlert();
  const form = h('form', { novalidate: true, 'aria-labelledby': 'signup-title' },
    alert,
    field({ label: 'Username', control: username, name: 'username', hint: '3–32 letters, digits, “-”, “.” or “_”.' }),
    field({ label: 'Email', control: email, name: 'email' }),
    field({ label: 'Password', control: password, name: 'password', hint: 'At least 8 characters.' }),
    field({ label: 'Repeat password', control: confirm, name: 'confirm' }),
    submit);
  replace(ctx.root, h('div', { class: 'card auth-card' }, h('div', { class: 'card-body' },
    h('h1', { id: 'signup-title', text: 'Create your account' }),
    form,
    h('p', { class: 'muted small' }, 'Already have an account? ', h('a', { href: `/login${ctx.url.search}`, text: 'Log in' })))));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, alert);
    // Quick checks the server repeats; the server's answer is what counts.
    const problems = [];
    if (!/^[A-Za-z0-9._-]{3,32}$/.test(username.value)) problems.push({ field: 'username', message: '3–32 letters, digits, “-”, “.” or “_”.' });
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]{2,}$/.test(email.value.trim())) problems.push({ field: 'email', message: 'Enter a valid email address.' });
    if (password.value.length < 8) problems.push({ field: 'password', message: 'At least 8 characters.' });
    if (confirm.value !== password.value) problems.push({ field: 'confirm', message: 'The passwords do not match.' });
    if (problems.length) {
      showApiError(form, alert, new ApiError(422, { code: 'validation_error', errors: problems }));
      return;
    }
    await busy(submit, 'Creating account…', async () => {
      try {
        await register(username.value, email.value.trim(), password.value);
        await login(username.value, password.value);
        ctx.navigate(nextPath(ctx), { replace: true });
      } catch (err) {
        if (!ctx.alive) return;
        showApiError(form, alert, err, {
          codeMap: {
            username_taken: ['username', 'That username is taken.'],
            email_taken: ['email', 'That email is already registered.'],
          },
        });
      }
    });
  });
  username.focus();
  return null;
}
