// Puts a 400's message next to the form field it names.

/**
 * `fields` maps API names (`start_date`, `options.delimiter`, …) to {control, error}.
 * The field whose name appears first in the message gets it; otherwise `top` does.
 */
export function showError(message, fields, top) {
  clearErrors(fields, top);
  let best = null;
  let at = Infinity;
  for (const name of Object.keys(fields)) {
    const short = name.includes('.') ? name.split('.').pop() : null;
    for (const n of short ? [name, short] : [name]) {
      const m = new RegExp(`(^|[^A-Za-z0-9_.])${n.replace('.', '\\.')}(?![A-Za-z0-9_])`).exec(message);
      if (m && m.index < at) { at = m.index; best = name; }
    }
  }
  if (best) {
    const f = fields[best];
    f.error.textContent = message;
    f.control.setAttribute('aria-invalid', 'true');
    f.control.focus();
  } else {
    top.textContent = message;
    top.focus?.();
  }
  return best;
}

export function clearErrors(fields, top) {
  for (const f of Object.values(fields)) {
    f.error.textContent = '';
    f.control.removeAttribute('aria-invalid');
  }
  top.textContent = '';
}
