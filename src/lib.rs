pub mod image;
pub mod llb;
pub mod lockfile;
pub mod normalize;
pub mod recipe;
pub mod subst;
pub mod template;
pub mod yaml;
