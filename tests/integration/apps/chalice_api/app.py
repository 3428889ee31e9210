"""A Chalice REST API (a framework's app, not ours): deployed with `chalice deploy` against LocalStack."""
import sys

from chalice import BadRequestError, Chalice

app = Chalice(app_name="driftstack-chalice-sample")
TODOS = {}


@app.route("/")
def index():
    return {"hello": "world", "python": "%d.%d" % sys.version_info[:2]}


@app.route("/todos", methods=["POST"])
def add_todo():
    body = app.current_request.json_body or {}
    if "title" not in body:
        raise BadRequestError("title is required")
    todo_id = str(len(TODOS) + 1)
    TODOS[todo_id] = {"id": todo_id, "title": body["title"]}
    return TODOS[todo_id]


@app.route("/todos/{todo_id}")
def get_todo(todo_id):
    return TODOS.get(todo_id, {"missing": todo_id})


@app.route("/boto3")
def boto3_version():
    import boto3  # provided by the runtime

    return {"boto3": boto3.__version__, "account": boto3.client("sts").get_caller_identity()["Account"]}
