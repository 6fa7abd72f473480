// Categories rarely change: fetched once per page load and shared.
import { api } from './api.js';

let cached = null;

export function loadCategories() {
  if (!cached) {
    cached = api.get('/api/categories')
      .then((page) => (Array.isArray(page) ? page : page.items || []))
      .catch((err) => {
        cached = null;
        throw err;
      });
  }
  return cached;
}
