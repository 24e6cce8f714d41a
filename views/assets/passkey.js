/* global window, document */
/*
 * Gatehouse passkey glue (docs/design/sign-in-methods.md §4.3). Loaded after
 * /assets/webauthn.js (@simplewebauthn/browser, global SimpleWebAuthnBrowser) on the pages whose
 * CSP carries a nonce. For each form[data-passkey]: the button asks the server for options
 * (POST JSON {csrf} to data-options), lets the browser make the ceremony, puts the answer in the
 * hidden `response` field and submits the form — an ordinary form post, so redirects and error pages
 * work as for passwords. Without this script the form still posts, and the server says that
 * passkeys need JavaScript. No inline script, no eval.
 * form[data-passkey="register"] (the account page's "Add a passkey") makes a new passkey with
 * startRegistration instead; when the options answer 401 (the sign-in is not recent enough) the
 * form is posted empty, and the server answers with the re-authentication redirect.
 */
(function () {
  'use strict';
  var lib = window.SimpleWebAuthnBrowser;

  /** A text of the page's language: the template fills data-msg-<name> from the message catalogue. */
  function text(form, name) {
    return form.getAttribute('data-msg-' + name) || '';
  }

  function say(form, message) {
    var status = document.getElementById(form.getAttribute('data-status'));
    if (status) status.textContent = message;
  }

  function options(form) {
    var csrf = form.querySelector('input[name="csrf"]').value;
    return fetch(form.getAttribute('data-options'), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ csrf: csrf }),
    }).then(function (answer) {
      if (!answer.ok) {
        var error = new Error('options ' + answer.status);
        error.status = answer.status;
        throw error;
      }
      return answer.json();
    });
  }

  function submitWith(form, result) {
    form.querySelector('input[name="response"]').value = JSON.stringify(result);
    form.submit();
  }

  function ceremony(form, conditional) {
    return options(form).then(function (optionsJSON) {
      return lib.startAuthentication({ optionsJSON: optionsJSON, useBrowserAutofill: conditional });
    }).then(function (result) {
      submitWith(form, result);
    });
  }

  function register(form) {
    return options(form).then(function (optionsJSON) {
      return lib.startRegistration({ optionsJSON: optionsJSON });
    }).then(function (result) {
      submitWith(form, result);
    });
  }

  function setUpRegistration(form) {
    var button = form.querySelector('button[type="submit"]');
    if (!lib || !lib.browserSupportsWebAuthn()) {
      if (button) button.disabled = true;
      say(form, text(form, 'cannot-make'));
      return;
    }
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      if (button) button.disabled = true;
      say(form, text(form, 'follow-create'));
      register(form).catch(function (error) {
        if (error && error.status === 401) {
          // Sign in again first: the empty form's POST answers the way there.
          form.submit();
          return;
        }
        if (button) button.disabled = false;
        var cancelled = error && (error.name === 'NotAllowedError' || error.name === 'AbortError');
        var known = error && error.name === 'InvalidStateError';
        say(form, text(form, cancelled ? 'closed' : known ? 'known' : 'failed'));
      });
    });
  }

  function setUp(form) {
    if (form.getAttribute('data-passkey') === 'register') {
      setUpRegistration(form);
      return;
    }
    var button = form.querySelector('button');
    if (!lib || !lib.browserSupportsWebAuthn()) {
      if (button) button.disabled = true;
      say(form, text(form, 'cannot-use'));
      return;
    }
    form.addEventListener('submit', function (event) {
      // A submit by the script itself (form.submit()) does not come here: only the button.
      event.preventDefault();
      if (button) button.disabled = true;
      say(form, text(form, 'follow-use'));
      ceremony(form, false).catch(function (error) {
        if (button) button.disabled = false;
        var cancelled = error && (error.name === 'NotAllowedError' || error.name === 'AbortError');
        say(form, text(form, cancelled ? 'closed' : 'failed'));
      });
    });
    if (form.getAttribute('data-conditional') === 'true' && lib.browserSupportsWebAuthnAutofill) {
      // Conditional UI: the email field offers passkeys among its suggestions where the browser can.
      lib.browserSupportsWebAuthnAutofill().then(function (supported) {
        if (!supported) return undefined;
        return ceremony(form, true);
      }).catch(function () {
        // Aborted by the button's ceremony, or dismissed: the button and the password remain.
      });
    }
  }

  var forms = document.querySelectorAll('form[data-passkey]');
  for (var i = 0; i < forms.length; i += 1) setUp(forms[i]);
})();
