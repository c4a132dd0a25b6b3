// nginx auth_request handler for the nginx + OPA stack: ask OPA's data API
// and turn its JSON result into the 2xx/403 that auth_request understands.
async function check(r) {
    const body = JSON.stringify({input: {
        authorization: r.headersIn['Authorization'] || '',
        method: r.variables.request_method,
        path: r.variables.request_uri,
        host: r.variables.host,
    }});
    try {
        const res = await ngx.fetch(r.variables.opa_url, {method: 'POST', body: body, headers: {'Content-Type': 'application/json'}});
        const out = await res.json();
        r.return(out.result === true ? 204 : 403);
    } catch (e) {
        r.error('opa: ' + e);
        r.return(500);
    }
}

export default {check};
