// Portero admin console: the actions menu (⋮) with keyboard support, and
// the master-access dialog. Everything else is plain HTML forms.
(function () {
  'use strict';
  function items(menu) { return Array.prototype.slice.call(menu.querySelectorAll('[role=menuitem]')); }
  function close(button, focusButton) {
    var menu = document.getElementById(button.getAttribute('aria-controls'));
    if (!menu || menu.hidden) return;
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    if (focusButton) button.focus();
  }
  function open(button, last) {
    document.querySelectorAll('.menu-button[aria-expanded=true]').forEach(function (b) { if (b !== button) close(b, false); });
    var menu = document.getElementById(button.getAttribute('aria-controls'));
    // Fixed to the viewport, so the table's scroll container never clips it.
    var r = button.getBoundingClientRect();
    menu.style.top = (r.bottom + 2) + 'px';
    menu.style.right = (document.documentElement.clientWidth - r.right) + 'px';
    menu.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    var list = items(menu);
    if (list.length) (last ? list[list.length - 1] : list[0]).focus();
  }
  document.querySelectorAll('.menu-button').forEach(function (button) {
    var menu = document.getElementById(button.getAttribute('aria-controls'));
    button.addEventListener('click', function () {
      if (button.getAttribute('aria-expanded') === 'true') close(button, true); else open(button, false);
    });
    button.addEventListener('keydown', function (e) {
      if (e.key === 'ArrowDown' || e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(button, false); }
      if (e.key === 'ArrowUp') { e.preventDefault(); open(button, true); }
    });
    menu.addEventListener('keydown', function (e) {
      var list = items(menu), i = list.indexOf(document.activeElement);
      if (e.key === 'ArrowDown') { e.preventDefault(); list[(i + 1) % list.length].focus(); }
      else if (e.key === 'ArrowUp') { e.preventDefault(); list[(i - 1 + list.length) % list.length].focus(); }
      else if (e.key === 'Home') { e.preventDefault(); list[0].focus(); }
      else if (e.key === 'End') { e.preventDefault(); list[list.length - 1].focus(); }
      else if (e.key === 'Escape') { e.preventDefault(); close(button, true); }
      else if (e.key === 'Tab') { close(button, false); }
    });
  });
  window.addEventListener('scroll', function () {
    document.querySelectorAll('.menu-button[aria-expanded=true]').forEach(function (b) { close(b, false); });
  }, true);
  document.addEventListener('click', function (e) {
    document.querySelectorAll('.menu-button[aria-expanded=true]').forEach(function (b) {
      if (!b.parentNode.contains(e.target)) close(b, false);
    });
  });
  var dialog = document.getElementById('master-dialog');
  if (dialog) {
    document.querySelectorAll('[data-master]').forEach(function (item) {
      item.addEventListener('click', function () {
        var tenant = item.getAttribute('data-master');
        document.getElementById('master-tenant').value = tenant;
        document.getElementById('master-dialog-tenant').textContent = tenant;
        var button = document.getElementById('menu-button-' + tenant);
        if (button) close(button, false);
        dialog.showModal();
        document.getElementById('master-reason').focus();
      });
    });
    dialog.querySelectorAll('[data-close]').forEach(function (b) {
      b.addEventListener('click', function () { dialog.close(); });
    });
  }
}());
// The member "active" checkbox takes effect at once.
document.querySelectorAll('[data-autosubmit]').forEach(function (box) {
  box.addEventListener('change', function () { box.form.submit(); });
});
