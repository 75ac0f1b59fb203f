package graph

//go:generate go tool gqlgen generate

// Resolver holds the dependencies of the GraphQL resolvers.
type Resolver struct{}
