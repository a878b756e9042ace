//! Topological order and patches on small graphs built through `Op::parse`.

use slimnet_ir::{Attributes, Graph, Node, NodeContext, Op, Patch, Value};

fn op(op_type: &str, inputs: usize) -> Op {
    let ctx = NodeContext {
        name: "n",
        op_type,
        domain: "",
        opset: 17,
        num_inputs: inputs,
        num_outputs: 1,
    };
    Op::parse(&ctx, &mut Attributes::default()).expect("supported op")
}

/// x -> Relu -> a -> Relu -> b ; Add(a, b) -> y, with nodes listed out of order.
fn graph() -> Graph {
    let mut g = Graph::default();
    let x = g.add_value(Value::new("x"));
    let a = g.add_value(Value::new("a"));
    let b = g.add_value(Value::new("b"));
    let y = g.add_value(Value::new("y"));
    g.inputs = vec![x];
    g.outputs = vec![y];
    g.nodes = vec![
        Node {
            name: "add".into(),
            op: op("Add", 2),
            inputs: vec![Some(a), Some(b)],
            outputs: vec![Some(y)],
        },
        Node {
            name: "relu2".into(),
            op: op("Relu", 1),
            inputs: vec![Some(a)],
            outputs: vec![Some(b)],
        },
        Node {
            name: "relu1".into(),
            op: op("Relu", 1),
            inputs: vec![Some(x)],
            outputs: vec![Some(a)],
        },
    ];
    g
}

fn order(g: &Graph) -> Vec<&str> {
    g.nodes.iter().map(|n| n.name.as_str()).collect()
}

#[test]
fn sort_orders_producers_first() {
    let mut g = graph();
    g.sort().unwrap();
    assert_eq!(order(&g), vec!["relu1", "relu2", "add"]);
}

#[test]
fn sort_reports_cycles() {
    let mut g = graph();
    // relu1 now reads y, which depends on relu1.
    g.nodes[2].inputs = vec![Some(3)];
    let err = g.sort().unwrap_err().to_string();
    assert!(err.contains("cycle"), "{err}");
}

#[test]
fn patch_replaces_a_subgraph() {
    let mut g = graph();
    g.sort().unwrap();
    // Replace relu2 by a new node reading x directly, and redirect b's readers.
    let c = g.add_value(Value::new("c"));
    let patch = Patch {
        remove: vec![1],
        add: vec![Node {
            name: "relu_x".into(),
            op: op("Relu", 1),
            inputs: vec![Some(0)],
            outputs: vec![Some(c)],
        }],
        redirect: vec![(2, c)],
    };
    patch.apply(&mut g).unwrap();
    assert_eq!(g.nodes.len(), 3);
    let add = g.nodes.iter().find(|n| n.name == "add").unwrap();
    assert_eq!(add.inputs, vec![Some(1), Some(c)]);
    assert_eq!(*order(&g).last().unwrap(), "add");
}

#[test]
fn patch_keeps_graph_output_names() {
    let mut g = graph();
    g.sort().unwrap();
    let z = g.add_value(Value::new("z"));
    let patch = Patch {
        remove: vec![2],
        add: vec![Node {
            name: "relu_out".into(),
            op: op("Relu", 1),
            inputs: vec![Some(1)],
            outputs: vec![Some(z)],
        }],
        redirect: vec![(3, z)],
    };
    patch.apply(&mut g).unwrap();
    assert_eq!(g.values[g.outputs[0]].name, "y");
}
