"""GraphiQL, served with its scripts from this package so it works with no internet."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
ASSETS = "/static/graphiql"

GRAPHIQL_HTML = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>flashsale · GraphiQL</title>
  <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
  <link rel="stylesheet" href="{ASSETS}/graphiql.min.css">
  <link rel="stylesheet" href="{ASSETS}/plugin-explorer.css">
  <script src="{ASSETS}/react.production.min.js"></script>
  <script src="{ASSETS}/react-dom.production.min.js"></script>
  <script src="{ASSETS}/graphiql.min.js"></script>
  <script src="{ASSETS}/plugin-explorer.umd.js"></script>
</head>
<body>
  <div id="graphiql">Loading…</div>
  <script>
    const url = new URL(window.location.href);
    url.search = ""; url.hash = "";
    const wsUrl = new URL(url); wsUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const fetcher = GraphiQL.createFetcher({{
      url: url.toString(), subscriptionUrl: wsUrl.toString(),
    }});
    const defaultQuery = `# flashsale GraphQL API.
# Sign in with the login mutation, then add
#   {{"Authorization": "Bearer <token>"}}
# under Headers below.
query Products {{
  products(first: 10) {{
    edges {{
      node {{ id name price available reserved sold onSale }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
`;
    const explorer = GraphiQLPluginExplorer.explorerPlugin();
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher, defaultQuery, plugins: [explorer],
        isHeadersEditorEnabled: true, shouldPersistHeaders: true,
      }})
    );
  </script>
</body>
</html>
"""
