// Create a listing: title, category, start price, duration in hours (presets or a custom value), optional
// description, bid increment and image (uploaded after the listing exists). API errors go next to fields.
import { ApiError, api } from './api.js';
import { setTitle } from './badge.js';
import { loadCategories } from './categories.js';
import { h, replace, uid } from './dom.js';
import { busy, clearErrors, field, formAlert, setFieldError, showApiError } from './forms.js';
import { toast } from './toast.js';

const PRESET_HOURS = [12, 24, 48, 72];
const MAX_HOURS = 30 * 24;

export function mount(ctx) {
  setTitle('Create listing');
  const titleInput = h('input', { class: 'input', type: 'text', required: true, maxlength: '80', placeholder: 'What are you selling?' });
  const category = h('select', { class: 'input', required: true }, h('option', { value: '', text: 'Choose…' }));
  const startPrice = h('input', { class: 'input', type: 'number', required: true, min: '0.01', max: '1000000', step: '0.01', inputmode: 'decimal', placeholder: '1.00' });
  const increment = h('input', { class: 'input', type: 'number', min: '0.01', max: '1000000', step: '0.01', inputmode: 'decimal', placeholder: '0.01' });
  const reserve = h('input', { class: 'input', type: 'number', min: '0.01', max: '1000000', step: '0.01', inputmode: 'decimal', placeholder: 'none' });
  const buyNow = h('input', { class: 'input', type: 'number', min: '0.01', max: '1000000', step: '0.01', inputmode: 'decimal', placeholder: 'none' });
  const description = h('textarea', { class: 'input', maxlength: '2000', rows: '5', placeholder: 'Condition, size, what is included…' });
  const counter = h('span', { 'aria-live': 'off', text: '0 / 2000' });
  const image = h('input', { class: 'input', type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp' });
  const preview = h('img', { class: 'image-preview', alt: 'Preview of the chosen image', hidden: true });

  // Duration: radio presets plus "custom" with its own number field, in hours like the original site.
  const radios = PRESET_HOURS.map((hours, i) => {
    const id = uid('dur');
    const radio = h('input', { type: 'radio', name: 'duration', id, value: String(hours), checked: i === 0 });
    return h('label', { for: id }, radio, `${hours} hours`);
  });
  const customId = uid('dur');
  const customRadio = h('input', { type: 'radio', name: 'duration', id: customId, value: 'custom' });
  const customHoursId = uid('hours');
  const customHours = h('input', {
    class: 'input custom-hours', type: 'number', name: 'custom_hours', id: customHoursId, min: '0', max: String(MAX_HOURS),
    step: 'any', inputmode: 'decimal', disabled: true, 'aria-label': 'Custom duration in hours', placeholder: 'e.g. 6',
  });
  const durationError = h('div', { class: 'field-error', id: uid('dur-error'), dataset: { errorFor: 'duration' } });
  const durationHint = h('div', { class: 'hint', id: uid('dur-hint'), text: `Up to ${MAX_HOURS} hours (30 days). A custom value may be a fraction of an hour, e.g. 0.5 for 30 minutes.` });
  customHours.setAttribute('aria-describedby', `${durationHint.id} ${durationError.id}`);
  const durationSet = h('fieldset', { class: 'radio-row', 'aria-describedby': `${durationHint.id} ${durationError.id}` },
    h('legend', { text: 'Duration' }),
    radios,
    h('label', { for: customId }, customRadio, 'Custom:'),
    customHours, h('span', { class: 'muted', text: 'hours' }));

  const submit = h('button', { class: 'btn btn-primary btn-block', type: 'submit', text: 'Create listing' });
  const alert = formAlert();
  const form = h('form', { novalidate: true, 'aria-labelledby': 'create-title' },
    alert,
    h('div', { class: 'form-grid' },
      field({ label: 'Title', control: titleInput, name: 'title' }),
      field({ label: 'Category', control: category, name: 'category_id' }),
      field({ label: 'Start price ($)', control: startPrice, name: 'start_price' }),
      h('div', { class: 'span-all' }, durationSet, durationHint, durationError),
      field({ label: 'Bid increment ($, optional)', control: increment, name: 'bid_increment', hint: 'Each new bid must beat the current one by at least this much. Left empty: the default ($0.01, or steps that grow with the price where the site uses price bands).' }),
      field({ label: 'Reserve price ($, optional)', control: reserve, name: 'reserve_price', hint: 'Hidden: below it the item does not sell. Bidders only see whether it is met.' }),
      field({ label: 'Buy-now price ($, optional)', control: buyNow, name: 'buy_now_price', hint: 'Anyone may buy at this price until the first bid (or until the reserve is met).' }),
      h('div', { class: 'span-2' }, field({ label: 'Image (optional)', control: image, name: 'image', hint: 'PNG, JPEG, GIF or WebP.' }), preview),
      field({ label: 'Description (optional)', control: description, name: 'description', className: 'span-all', hint: counter })),
    h('div', { class: 'form-submit' }, submit));

  replace(ctx.root,
    h('div', { class: 'page-head' }, h('h1', { id: 'create-title', text: 'Create listing' })),
    h('div', { class: 'card' }, h('div', { class: 'card-body' }, form)));

  loadCategories().then((items) => {
    if (!ctx.alive) return;
    category.append(...items.map((c) => h('option', { value: String(c.id), text: c.name })));
  }).catch(() => setFieldError(form, 'category_id', 'Categories could not be loaded; reload the page.'));

  form.addEventListener('change', (event) => {
    if (event.target.name !== 'duration') return;
    const custom = customRadio.checked;
    customHours.disabled = !custom;
    if (custom) customHours.focus();
  });
  description.addEventListener('input', () => { counter.textContent = `${description.value.length} / 2000`; });

  let previewUrl = null;
  image.addEventListener('change', () => {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    const file = image.files[0];
    previewUrl = file ? URL.createObjectURL(file) : null;
    preview.hidden = !file;
    if (file) preview.src = previewUrl;
  });
  ctx.cleanup(() => { if (previewUrl) URL.revokeObjectURL(previewUrl); });

  function durationSeconds() {
    const checked = form.querySelector('input[name="duration"]:checked');
    const hours = checked.value === 'custom' ? Number(customHours.value) : Number(checked.value);
    if (!Number.isFinite(hours) || hours <= 0) return null;
    return Math.max(1, Math.round(hours * 3600));
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, alert);
    const local = [];
    if (!titleInput.value.trim()) local.push({ field: 'title', message: 'Give the listing a title.' });
    if (!category.value) local.push({ field: 'category_id', message: 'Choose a category.' });
    if (!startPrice.value || Number(startPrice.value) < 0.01) local.push({ field: 'start_price', message: 'Enter a start price of at least $0.01.' });
    const seconds = durationSeconds();
    if (seconds === null) local.push({ field: 'duration', message: 'Enter the number of hours.' });
    else if (seconds > MAX_HOURS * 3600) local.push({ field: 'duration', message: `At most ${MAX_HOURS} hours.` });
    if (local.length) {
      showApiError(form, alert, new ApiError(422, { code: 'validation_error', errors: local }));
      return;
    }
    const body = {
      title: titleInput.value.trim(),
      category_id: Number(category.value),
      start_price: startPrice.value,
      duration_seconds: seconds,
    };
    if (description.value.trim()) body.description = description.value.trim();
    if (increment.value) body.bid_increment = increment.value;
    if (reserve.value) body.reserve_price = reserve.value;
    if (buyNow.value) body.buy_now_price = buyNow.value;
    const file = image.files[0];

    await busy(submit, 'Creating…', async () => {
      let listing;
      try {
        listing = await api.post('/api/listings', body);
      } catch (err) {
        if (!ctx.alive) return;
        showApiError(form, alert, err, { fieldMap: { duration_seconds: 'duration' } });
        return;
      }
      if (file) {
        submit.textContent = 'Uploading image…';
        try {
          const uploaded = await api.upload(`/api/listings/${listing.id}/image`, file);
          if (uploaded && uploaded.image_url) listing.image_url = uploaded.image_url;
        } catch (err) {
          const reason = err.status === 413 ? 'the file is too large'
            : err.status === 415 ? 'it is not an image we can read' : err.message;
          toast({
            title: 'Listing created without its image',
            body: `The image was not accepted: ${reason}. You can upload another from “Edit”.`,
            kind: 'warning',
            timeout: 12000,
          });
        }
      }
      toast({ title: 'Listing created', body: `“${listing.title}” is live.`, kind: 'success', timeout: 4000 });
      ctx.navigate(`/listings/${listing.id}`);
    });
  });

  titleInput.focus();
  return null;
}
