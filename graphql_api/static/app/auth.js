// The sign-in panel both pages share: a form when signed out, who you are when signed in.
import { ApiError, describe, el, gql, session, settled } from "./graphql.js";

const USER = "token user { email role }";

/**
 * Renders into `panel`. `onChange(user)` runs after signing in or out (user is null when
 * signed out); `allowRegister` adds "Create account"; `say(text, kind)` shows messages.
 */
export function mountAuth(panel, { onChange, say, allowRegister = true }) {
  function signedOut() {
    const email = el("input", { id: "auth-email", type: "email", name: "email", autocomplete: "username", required: true });
    const password = el("input", {
      id: "auth-password",
      type: "password",
      name: "password",
      autocomplete: "current-password",
      required: true,
    });
    async function submit(operation) {
      if (!form.reportValidity()) return;
      try {
        const data = await gql(
          `mutation Auth($email: String!, $password: String!) { auth: ${operation}(email: $email, password: $password) { ${USER} errors { code message field } } }`,
          { email: email.value, password: password.value },
        );
        const { token, user } = settled(data.auth);
        session.token = token;
        say(""); // a wrong password's message must not stay above the account it opened
        render(user);
        onChange(user);
      } catch (error) {
        say(describe(error), "error");
      }
    }
    const form = el(
      "form",
      { class: "auth", "aria-label": "Sign in", onsubmit: (event) => (event.preventDefault(), submit("login")) },
      el("label", { for: "auth-email" }, "E-mail"),
      email,
      el("label", { for: "auth-password" }, "Password"),
      password,
      el("button", { type: "submit" }, "Sign in"),
      allowRegister
        ? el("button", { type: "button", class: "secondary", onclick: () => submit("register") }, "Create account")
        : null,
    );
    return form;
  }

  function signedIn(user) {
    return el(
      "div",
      { class: "auth" },
      el("span", { id: "signed-in-as" }, `Signed in as ${user.email}`),
      el("button", { type: "button", class: "secondary", onclick: () => (say(""), signOut()) }, "Sign out"),
    );
  }

  function signOut() {
    session.token = null;
    render(null);
    onChange(null);
  }

  function render(user) {
    panel.replaceChildren(user ? signedIn(user) : signedOut());
  }

  return { render, signOut };
}

/** Who the stored token belongs to, or null (an expired token is forgotten). */
export async function currentUser() {
  if (!session.token) return null;
  try {
    const data = await gql("query Me { me { email role } }");
    if (!data.me) session.token = null;
    return data.me;
  } catch (error) {
    if (error instanceof ApiError && error.code === "UNAUTHENTICATED") {
      session.token = null;
      return null;
    }
    throw error;
  }
}
