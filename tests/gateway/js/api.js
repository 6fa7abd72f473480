// Stub of services/gateway/web/assets/api.js for ws_resume.mjs: a logged-in session with token "T".
export async function freshAccessToken() { return 'T'; }
export function isLoggedIn() { return true; }
export async function refreshTokens() { return true; }
